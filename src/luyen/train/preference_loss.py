"""Preference losses on sequence log-probabilities: DPO (sigmoid, IPO, hinge; RPO's NLL term), KTO,
ORPO and SimPO. Pure functions of tensors, one value per pair (or per example for KTO), so the loop
can sum them over a step and divide by the step's pairs (exact gradient accumulation).

Arguments: ``pc, pr`` the policy's summed answer log-probs of the chosen and rejected side [B];
``rc, rr`` the reference's; ``nc, nr`` the answers' token counts. Each function returns
``(loss [B], chosen reward [B], rejected reward [B])``, the rewards being what the method's implicit
reward says of each side (for DPO beta x the log-ratio to the reference). The formulas follow the
papers and TRL's DPOTrainer / KTOTrainer / ORPOTrainer / CPOTrainer (simpo), which the tests check
against hand computations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo(pc, pr, rc, rr, nc, nr, *, beta: float, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
        sft_weight: float = 0.0):
    """DPO (Rafailov et al. 2023): -log sigmoid(beta ((pc - rc) - (pr - rr))), with conservative label
    smoothing; ``ipo`` (Azar et al. 2023): (h - 1 / (2 beta))^2 on length-averaged log-ratios; ``hinge``
    (SLiC): max(0, 1 - beta h). ``sft_weight`` adds RPO's NLL of the chosen answer (per token)."""
    if loss_type == "ipo":
        h = (pc / nc - rc / nc) - (pr / nr - rr / nr)
        loss = (h - 1 / (2 * beta)) ** 2
    else:
        h = (pc - rc) - (pr - rr)
        if loss_type == "hinge":
            loss = torch.relu(1 - beta * h)
        else:
            loss = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    if sft_weight:
        loss = loss + sft_weight * (-pc / nc)
    return loss, beta * (pc - rc).detach(), beta * (pr - rr).detach()


def kto(p, r, desirable, *, beta: float, kl: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
    """KTO (Ethayarajh et al. 2024) on unpaired examples: a desirable answer's loss is
    w_D (1 - sigmoid(beta (p - r - z))), an undesirable one's w_U (1 - sigmoid(beta (z - p + r))), with
    z the (detached, clamped at 0) KL estimate ``kl``. Returns (loss [B], reward [B])."""
    ratio = p - r
    good = desirable.to(torch.bool)
    loss = torch.where(good, desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
                       undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))))
    return loss, beta * ratio.detach()


def orpo(pc, pr, nc, nr, *, beta: float):
    """ORPO (Hong et al. 2024), no reference: the chosen answer's NLL per token minus beta x log sigmoid
    of the log odds ratio of the length-averaged likelihoods."""
    mc, mr = pc / nc, pr / nr
    log_odds = (mc - mr) - (torch.log1p(-torch.exp(mc).clamp(max=1 - 1e-6)) -
                            torch.log1p(-torch.exp(mr).clamp(max=1 - 1e-6)))
    loss = -mc - beta * F.logsigmoid(log_odds)
    return loss, beta * mc.detach(), beta * mr.detach()


def simpo(pc, pr, nc, nr, *, beta: float, gamma: float, label_smoothing: float = 0.0):
    """SimPO (Meng et al. 2024), no reference: -log sigmoid(beta (pc / nc - pr / nr) - gamma)."""
    h = beta * (pc / nc - pr / nr) - gamma
    loss = -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)
    return loss, beta * (pc / nc).detach(), beta * (pr / nr).detach()
