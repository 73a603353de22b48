"""Cross-entropy on the output layer, computed only where the loss needs it, a chunk at a time.

Gemma-3's output layer maps 640 hidden units to 262,144 tokens: logits for a whole batch would be
gigabytes, and most positions (prompts, padding) carry no loss. `linear_cross_entropy` takes the
final hidden states of the loss-bearing positions only and, chunk by chunk, computes logits,
log-softmax, the loss and, in the same pass, the gradient with respect to the hidden states (and to
the output weight, when it trains). Nothing of size vocab survives a chunk, and backward only scales
the stored gradients: the output layer costs 4 x hidden x vocab FLOPs per loss token, not the 6 a
recomputing checkpoint would cost, and its memory is one chunk of logits.

    loss_sum = linear_cross_entropy(hidden[sel], lm_head.weight, None, targets[sel], chunk=256)
    (loss_sum / n_loss_tokens_in_step).backward()

This is the CPU cousin of Liger-Kernel's fused linear cross-entropy (a GPU Triton kernel that does
not run here). ``rows=(index, values)`` replaces a few rows of a frozen weight with trainable ones
(peft's trainable tokens: an untrained <end_of_turn> learned under LoRA) at the cost of those rows,
where peft's own layer copies and differentiates the whole 262k-row matrix every step. It returns the *sum* of token losses so callers can normalise by the number of
loss-bearing tokens in the whole optimiser step, which keeps gradient accumulation exact.
"""
from __future__ import annotations

import torch


COMPILE_MIN_VOCAB = 32768  # below this the softmax passes are cheap and compiling is not worth its seconds
VOCAB_BLOCK = 2048  # output columns per product in `_logits`
_compiled: dict = {}


def _logits(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """h @ w.T (+ b). In fp32 on a CPU with a wide output layer, VOCAB_BLOCK columns at a time into one
    buffer: on the 2-core AVX2 EPYC the BLAS multiplies 300 rows by Gemma-3's transposed 262k x 640 weight
    at ~110 GFLOP/s in one call and at ~160 in blocks of 2,048 (alone, a reused buffer); in place, scoring
    the 37 zero-shot prompts' reference answers went 17.7 -> 16.3 s, and LoRA training steps were no slower
    (8-step runs alternating: 120 and 110 tokens/s against 117 and 99). Each column is the same dot product,
    summed in whatever order the BLAS picks for the shape: equal to rounding (on Gemma-3's head, 300 rows,
    bit for bit); the one call is the tests' reference. bf16 and GPUs keep the one call (not measured)."""
    if h.device.type != "cpu" or h.dtype != torch.float32 or w.shape[0] < 4 * VOCAB_BLOCK:
        return h @ w.t() if b is None else torch.addmm(b, h, w.t())
    out = h.new_empty((h.shape[0], w.shape[0]))
    for s in range(0, w.shape[0], VOCAB_BLOCK):
        block = w[s:s + VOCAB_BLOCK].t()
        out[:, s:s + VOCAB_BLOCK] = h @ block if b is None else torch.addmm(b[s:s + VOCAB_BLOCK], h, block)
    return out


def _rows(logits: torch.Tensor, targets: torch.Tensor, softcap: float | None, need_grad: bool):
    """Per-row loss (fp32) and d loss / d logits (in the logits' dtype) for one chunk of logits."""
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if softcap:
        capped = torch.tanh(z / softcap)
        z = capped * softcap
    m = z.amax(-1, keepdim=True)
    lse = m + torch.log(torch.exp(z - m).sum(-1, keepdim=True))
    loss = (lse - z.gather(1, targets[:, None])).squeeze(-1)
    if not need_grad:
        return loss, None
    cols = torch.arange(z.shape[-1], device=z.device)[None, :]
    grad = torch.exp(z - lse) - (cols == targets[:, None]).to(z.dtype)
    if softcap:
        grad = grad * (1.0 - capped * capped)
    return loss, grad.to(logits.dtype)


def _rows_fn(vocab: int):
    """`_rows`, compiled by TorchInductor into one fused pass (reads bf16 logits once, writes the
    gradient once) when the vocabulary is large: 77 ms instead of ~320 ms per 256 x 262k chunk on
    this CPU, whose memory moves only ~7.5 GB/s. Falls back to eager if compiling is impossible."""
    if vocab < COMPILE_MIN_VOCAB or _compiled.get("failed"):
        return _rows
    if "fn" not in _compiled:
        _compiled["fn"] = torch.compile(_rows, dynamic=True)
    return _compiled["fn"]


def _chunk_rows(h, t, w, b, index, v, softcap, need):
    """Per-row loss and d loss / d logits of one chunk of rows (see `_rows`), with `index` rows of the
    weight replaced by `v`; falls back to eager `_rows` when compiling is impossible."""
    logits = _logits(h, w, b)
    if v is not None:
        logits[:, index] = h @ v.t()
    rows = _rows_fn(w.shape[0])
    try:
        return rows(logits, t, softcap, need)
    except Exception:  # no C++ compiler, unsupported platform: stay correct, run eager
        if rows is _rows:
            raise
        _compiled["failed"] = True
        return _rows(logits, t, softcap, need)


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the losses and, in the same pass, the gradients; backward scales them. With
    ``per_row`` the output is every row's loss [N] and backward scales each row by its own upstream
    gradient (a preference loss weighs each sequence differently): the gradient of the hidden states
    and of replaced rows scale per row, the output weight's (full fine-tuning) is recomputed in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int, softcap: float | None, index=None, values=None,
                per_row: bool = False):
        n = hidden.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        need_v = values is not None and ctx.needs_input_grad[7]
        cd = hidden.dtype  # compute dtype of the matmuls (bf16 under mixed precision)
        acc = torch.float32 if cd in (torch.float16, torch.bfloat16) else cd  # softmax and loss dtype
        later_w = per_row and (need_w or need_b)  # per-row scales are only known in backward
        need = need_h or need_v or ((need_w or need_b) and not later_w)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight if weight.dtype == cd else weight.to(cd)
            b = None if bias is None else bias.to(cd)
            grad_h = torch.empty_like(hidden) if need_h else None
            grad_w = torch.zeros_like(weight) if need_w and not later_w else None
            grad_b = torch.zeros_like(bias) if need_b and not later_w else None
            v = None if values is None else values.to(cd)
            fix = None if v is None else v - w[index]  # the replaced rows minus the frozen ones
            grad_v = torch.zeros_like(values, dtype=acc) if need_v and not per_row else None
            picked = hidden.new_empty((n, len(index)), dtype=acc) if need_v and per_row else None
            losses = hidden.new_empty((n,), dtype=acc)
            for s in range(0, n, chunk):
                h, t = hidden[s:s + chunk], targets[s:s + chunk]
                loss, grad = _chunk_rows(h, t, w, b, index, v, softcap, need)
                losses[s:s + chunk] = loss
                if not need:
                    continue
                if need_h:
                    grad_h[s:s + chunk] = grad @ w if v is None else torch.addmm(grad @ w, grad[:, index], fix)
                if picked is not None:
                    picked[s:s + chunk] = grad[:, index]
                elif need_v:
                    grad_v += (grad[:, index].t() @ h).to(acc)
                if grad_w is not None:
                    if grad_w.dtype == cd:
                        grad_w.addmm_(grad.t(), h)
                    else:
                        grad_w += (grad.t() @ h).to(grad_w.dtype)
                if grad_b is not None:
                    grad_b += grad.sum(0).to(grad_b.dtype)
        ctx.per_row, ctx.later_w, ctx.chunk, ctx.softcap, ctx.index = per_row, later_w, chunk, softcap, index
        ctx.has = (need_h, need_w, need_b, need_v)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None,
                      values.dtype if values is not None else None)
        keep = [grad_h, grad_w, grad_b, grad_v if picked is None else picked]
        inputs = [hidden, weight, bias, targets, values] if later_w or picked is not None else [None] * 5
        ctx.save_for_backward(*keep, *inputs)
        return losses if per_row else losses.sum()

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, grad_b, grad_v, hidden, weight, bias, targets, values = ctx.saved_tensors
        need_h, need_w, need_b, need_v = ctx.has
        g = grad_out[:, None] if ctx.per_row else grad_out
        out_h = (grad_h * g).to(ctx.dtypes[0]) if need_h else None
        if need_v:
            out_v = ((grad_v * g).t() @ hidden.to(grad_v.dtype)) if ctx.per_row else grad_v * grad_out
            out_v = out_v.to(ctx.dtypes[3])
        else:
            out_v = None
        if ctx.later_w:
            grad_w, grad_b = _recomputed_weight_grads(ctx, hidden, weight, bias, targets, values, grad_out)
            g = 1.0
        out_w = (grad_w * g).to(ctx.dtypes[1]) if need_w else None
        out_b = (grad_b * g).to(ctx.dtypes[2]) if need_b else None
        return out_h, out_w, out_b, None, None, None, None, out_v, None


def _recomputed_weight_grads(ctx, hidden, weight, bias, targets, values, scale):
    """The output weight's (and bias's) gradient under per-row upstream scales, a chunk at a time."""
    need_w, need_b = ctx.has[1], ctx.has[2]
    cd, index = hidden.dtype, ctx.index
    with torch.autocast(hidden.device.type, enabled=False):
        w = weight if weight.dtype == cd else weight.to(cd)
        b = None if bias is None else bias.to(cd)
        v = None if values is None else values.to(cd)
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = torch.zeros_like(bias) if need_b else None
        for s in range(0, hidden.shape[0], ctx.chunk):
            h = hidden[s:s + ctx.chunk]
            _, grad = _chunk_rows(h, targets[s:s + ctx.chunk], w, b, index, v, ctx.softcap, True)
            grad = grad * scale[s:s + ctx.chunk, None].to(grad.dtype)
            if grad_w is not None:
                grad_w += (grad.t() @ h).to(grad_w.dtype)
            if grad_b is not None:
                grad_b += grad.sum(0).to(grad_b.dtype)
    return grad_w, grad_b


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         targets: torch.Tensor, chunk: int = 256, softcap: float | None = None,
                         rows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Sum over rows of -log softmax(hidden @ W.T + bias)[target]; hidden is [N, H], targets [N]. W is
    ``weight``, or ``weight`` with rows ``index`` replaced by ``values`` when ``rows=(index, values)``."""
    index, values = rows if rows is not None else (None, None)
    if hidden.shape[0] == 0:
        zero = hidden.sum() * 0.0 + (weight.sum() * 0.0 if weight.requires_grad else 0.0)
        return zero + (values.sum() * 0.0 if values is not None and values.requires_grad else 0.0)
    return _apply(hidden, weight, bias, targets, chunk, softcap, index, values, False)


def linear_token_losses(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        targets: torch.Tensor, chunk: int = 256, softcap: float | None = None,
                        rows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Every row's -log softmax(hidden @ W.T + bias)[target], [N], differentiable, with the same
    chunked logits as `linear_cross_entropy`: what a preference loss sums per sequence."""
    index, values = rows if rows is not None else (None, None)
    if hidden.shape[0] == 0:
        return hidden.sum(-1) * 0.0
    return _apply(hidden, weight, bias, targets, chunk, softcap, index, values, True)


def _apply(hidden, weight, bias, targets, chunk, softcap, index, values, per_row):
    """`_LinearCrossEntropy` with no gradient work when gradients are off. An autograd Function sees
    which inputs require gradients even under `torch.no_grad()`, so scoring with a model whose weights
    require them (evaluation's answer perplexities) zeroed and accumulated a 262k x 640 weight gradient
    per call: 3.7 s of 16.5 s for 16 examples on a 2-core AVX2 EPYC, plus the gradient passes."""
    if not torch.is_grad_enabled():
        hidden, weight = hidden.detach(), weight.detach()
        bias = None if bias is None else bias.detach()
        values = None if values is None else values.detach()
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk, softcap, index, values, per_row)


def reference_cross_entropy(hidden, weight, bias, targets, softcap=None, rows=None, reduction="sum"):
    """The plain version (whole logits matrix), for tests."""
    if rows is not None:
        weight = weight.index_copy(0, rows[0], rows[1].to(weight.dtype))
    logits = torch.nn.functional.linear(hidden, weight, bias)
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, targets, reduction=reduction)
