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
_compiled: dict = {}


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


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int, softcap: float | None, index=None, values=None):
        n = hidden.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        need_v = values is not None and ctx.needs_input_grad[7]
        need = need_h or need_w or need_b or need_v
        cd = hidden.dtype  # compute dtype of the matmuls (bf16 under mixed precision)
        acc = torch.float32 if cd in (torch.float16, torch.bfloat16) else cd  # softmax and loss dtype
        rows = _rows_fn(weight.shape[0])
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight if weight.dtype == cd else weight.to(cd)
            b = None if bias is None else bias.to(cd)
            grad_h = torch.empty_like(hidden) if need_h else None
            grad_w = torch.zeros_like(weight) if need_w else None
            grad_b = torch.zeros_like(bias) if need_b else None
            v = None if values is None else values.to(cd)
            fix = None if v is None else v - w[index]  # the replaced rows minus the frozen ones
            grad_v = torch.zeros_like(values, dtype=acc) if need_v else None
            total = torch.zeros((), dtype=acc, device=hidden.device)
            for s in range(0, n, chunk):
                h, t = hidden[s:s + chunk], targets[s:s + chunk]
                logits = h @ w.t() if b is None else torch.addmm(b, h, w.t())
                if v is not None:
                    logits[:, index] = h @ v.t()
                try:
                    loss, grad = rows(logits, t, softcap, need)
                except Exception:  # no C++ compiler, unsupported platform: stay correct, run eager
                    if rows is _rows:
                        raise
                    _compiled["failed"] = True
                    rows = _rows
                    loss, grad = rows(logits, t, softcap, need)
                del logits
                total += loss.sum().to(acc)
                if not need:
                    continue
                if need_h:
                    grad_h[s:s + chunk] = grad @ w if v is None else torch.addmm(grad @ w, grad[:, index], fix)
                if need_v:
                    grad_v += (grad[:, index].t() @ h).to(acc)
                if need_w:
                    if grad_w.dtype == cd:
                        grad_w.addmm_(grad.t(), h)
                    else:
                        grad_w += (grad.t() @ h).to(grad_w.dtype)
                if need_b:
                    grad_b += grad.sum(0).to(grad_b.dtype)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w, grad_b, grad_v) if g is not None))
        ctx.has = (need_h, need_w, need_b, need_v)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None,
                      values.dtype if values is not None else None)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        saved = iter(ctx.saved_tensors)
        grads = [(next(saved) * grad_out).to(ctx.dtypes[i]) if has else None for i, has in enumerate(ctx.has)]
        return grads[0], grads[1], grads[2], None, None, None, None, grads[3]


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         targets: torch.Tensor, chunk: int = 256, softcap: float | None = None,
                         rows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Sum over rows of -log softmax(hidden @ W.T + bias)[target]; hidden is [N, H], targets [N]. W is
    ``weight``, or ``weight`` with rows ``index`` replaced by ``values`` when ``rows=(index, values)``."""
    index, values = rows if rows is not None else (None, None)
    if hidden.shape[0] == 0:
        zero = hidden.sum() * 0.0 + (weight.sum() * 0.0 if weight.requires_grad else 0.0)
        return zero + (values.sum() * 0.0 if values is not None and values.requires_grad else 0.0)
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk, softcap, index, values)


def reference_cross_entropy(hidden, weight, bias, targets, softcap=None, rows=None):
    """The plain version (whole logits matrix), for tests."""
    if rows is not None:
        weight = weight.index_copy(0, rows[0], rows[1].to(weight.dtype))
    logits = torch.nn.functional.linear(hidden, weight, bias)
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
