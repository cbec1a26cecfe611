"""GroupFace (Kim et al., CVPR 2020): group-aware representations on top of any registered backbone.

Architecture ``"groupface"`` (rebuildable at evaluation without ``fr_bench.train``):

* the backbone (``backbone="iresnet18"``, ``backbone_kwargs``) gives the shared feature x, ``shared_dim``-d;
* the instance-based representation v_x = BN(FC(x)), ``num_features``-d;
* K group-aware representations v_x^{G_k} = BN(FC_k(x)) (K = ``num_groups`` = 32, the paper's default), computed as
  one (shared_dim -> K * num_features) layer, which is K independent FC layers;
* the group decision network (GDN) on v_x: two FC + BN (+ PReLU) layers give the intermediate feature v^_x
  (``intermediate_dim``-d), then an FC to K logits and a softmax: p(G_k | x);
* the final representation v-bar_x = v_x + sum_k p(G_k | x) v_x^{G_k} (S-GroupFace), or, with ``hard=True``,
  v_x + v_x^{G_k*} with k* = argmax_k p(G_k | x) (H-GroupFace).

``forward(x)`` returns v-bar_x (B, num_features), what evaluation embeds; ``forward_train(x)`` (or
``forward(x, train_outputs=True)``, the form to use through DistributedDataParallel) returns the dict the
``groupface`` head takes (:data:`TRAIN_OUTPUT_KEYS`); ``embed_with_intermediate(x)`` returns (v-bar_x, v^_x) for
:func:`group_aware_similarity`.

Evaluation (``frbench evaluate``): the loader calls :func:`enable_score_rows`, after which ``forward(x)`` returns the
score rows ``[v-bar_x (num_features) | v^_x (intermediate_dim)]`` and the embedder declares the score
(:meth:`GroupFace.score_declaration`: ``{"name": "group-aware", "embedding_size", "extra_size", "beta", "gamma",
"distance"}``). The runner makes ``group-aware`` the default score of such a model; ``-c score=cosine`` compares
the final embeddings only (:mod:`fr_bench.similarity`). Training and ``forward`` outside evaluation are unchanged.

Group-aware similarity (the paper's Sec. 3.1): S*(x_i, x_j) = S(v-bar_i, v-bar_j) - beta D(v^_i, v^_j)^gamma, S the
cosine similarity, D a distance between the GDN intermediate features, beta = 0.1, gamma = 1/3. The paper
SUBTRACTS the distance term (the similarity is "penalized by a distance between intermediate features"); it does
not name D, so it is a parameter here: Euclidean by default, or ``"cosine"`` (1 - cosine). (The sign and the
constants are the first reader's reading of the paper; a later look-up found only the abstract, so they are not
re-verified. ``beta``, ``gamma`` and ``distance`` are constructor arguments, recorded in the checkpoint.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TRAIN_OUTPUT_KEYS = ("embedding", "group_logits", "group_probs", "intermediate", "instance")
DISTANCES = ("euclidean", "cosine")


class GroupFace(nn.Module):
    """Backbone + instance embedding + K group embeddings + group decision network (see module docstring)."""

    def __init__(self, *, backbone: str = "iresnet18", backbone_kwargs: dict[str, Any] | None = None,
                 num_features: int = 512, shared_dim: int = 512, num_groups: int = 32,
                 intermediate_dim: int = 256, hard: bool = False, beta: float = 0.1, gamma: float = 1.0 / 3.0,
                 distance: str = "euclidean") -> None:
        super().__init__()
        from fr_bench.models.backbones import create_backbone  # late: this module is imported by that registry

        if backbone == "groupface":
            raise ValueError("GroupFace cannot wrap itself: choose a plain backbone (e.g. 'iresnet18')")
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        kwargs = dict(backbone_kwargs or {})
        kwargs.setdefault("num_features", shared_dim)
        self.backbone = create_backbone(backbone, **kwargs)
        shared = int(kwargs["num_features"])
        self.num_features, self.num_groups, self.hard = num_features, num_groups, bool(hard)
        self.intermediate_dim = int(intermediate_dim)
        self.score_params = {"beta": float(beta), "gamma": float(gamma), "distance": str(distance)}
        self.score_rows = False  # evaluation output: [final | intermediate] rows (see enable_score_rows)
        self.instance_fc = nn.Sequential(nn.Linear(shared, num_features), nn.BatchNorm1d(num_features))
        self.group_fc = nn.Sequential(nn.Linear(shared, num_groups * num_features),
                                      nn.BatchNorm1d(num_groups * num_features))
        self.gdn = nn.Sequential(
            nn.Linear(num_features, intermediate_dim), nn.BatchNorm1d(intermediate_dim), nn.PReLU(intermediate_dim),
            nn.Linear(intermediate_dim, intermediate_dim), nn.BatchNorm1d(intermediate_dim),
            nn.PReLU(intermediate_dim),
        )
        self.gdn_out = nn.Linear(intermediate_dim, num_groups)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the groupface head needs: final embedding, group logits / probabilities, GDN feature."""
        shared = self.backbone(x)
        instance = self.instance_fc(shared)
        groups = self.group_fc(shared).view(-1, self.num_groups, self.num_features)
        intermediate = self.gdn(instance)
        logits = self.gdn_out(intermediate)
        probs = logits.softmax(dim=1)
        if self.hard:
            pick = probs.argmax(dim=1)
            group_repr = groups[torch.arange(groups.shape[0], device=groups.device), pick]
        else:
            group_repr = (probs.unsqueeze(2) * groups).sum(dim=1)
        return {"embedding": instance + group_repr, "group_logits": logits, "group_probs": probs,
                "intermediate": intermediate, "instance": instance}

    def forward(self, x: torch.Tensor, *, train_outputs: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        """The final representation v-bar_x (B, num_features), what evaluation embeds; with ``train_outputs=True``
        the :meth:`forward_train` dict (call ``ddp_model(x, train_outputs=True)`` under DistributedDataParallel,
        whose gradient hooks run only through ``forward``)."""
        out = self.forward_train(x)
        if train_outputs:
            return out
        if self.score_rows:
            return torch.cat([out["embedding"], out["intermediate"]], dim=1)
        return out["embedding"]

    def score_declaration(self) -> dict[str, Any]:
        """The score this model brings (:class:`fr_bench.similarity.FeatureLayout` reads it): group-aware, on rows
        ``[final (embedding_size) | intermediate (extra_size)]``, with its constants."""
        return {"name": "group-aware", "embedding_size": self.num_features, "extra_size": self.intermediate_dim,
                **self.score_params}

    def embed_with_intermediate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(final representation, GDN intermediate feature): the inputs of :func:`group_aware_similarity`."""
        out = self.forward_train(x)
        return out["embedding"], out["intermediate"]


def enable_score_rows(model: nn.Module) -> dict[str, Any] | None:
    """Switch the GroupFace inside ``model`` (itself, or wrapped, e.g. by ``resize_input``) to its evaluation rows
    and return its score declaration; None (and nothing changed) when ``model`` holds no GroupFace."""
    found = [m for m in model.modules() if isinstance(m, GroupFace)]
    if len(found) != 1:
        if len(found) > 1:
            raise ValueError(f"{len(found)} GroupFace modules in one model: which one's score applies is ambiguous")
        return None
    found[0].score_rows = True
    return found[0].score_declaration()


def groupface(**kwargs) -> GroupFace:
    """GroupFace on a registered backbone (``backbone=``, ``backbone_kwargs=``), K = 32 groups by default."""
    return GroupFace(**kwargs)


def group_aware_similarity(final_a: torch.Tensor, final_b: torch.Tensor, inter_a: torch.Tensor,
                           inter_b: torch.Tensor, *, beta: float = 0.1, gamma: float = 1.0 / 3.0,
                           distance: str = "euclidean") -> torch.Tensor:
    """S* = cos(final_a, final_b) - beta * D(inter_a, inter_b) ** gamma, row by row (pairs (a_i, b_i)).

    ``final_*`` are (N, D) final representations, ``inter_*`` (N, I) GDN intermediate features; returns (N,).
    D is the Euclidean distance (default) or the cosine distance 1 - cos (clipped at 0).
    """
    if final_a.shape != final_b.shape or inter_a.shape != inter_b.shape or final_a.shape[0] != inter_a.shape[0]:
        raise ValueError(f"shape mismatch: finals {tuple(final_a.shape)}/{tuple(final_b.shape)}, "
                         f"intermediates {tuple(inter_a.shape)}/{tuple(inter_b.shape)}")
    cos = F.cosine_similarity(final_a, final_b, dim=1)
    if distance == "euclidean":
        d = (inter_a - inter_b).norm(dim=1)
    elif distance == "cosine":
        d = (1.0 - F.cosine_similarity(inter_a, inter_b, dim=1)).clamp_min(0.0)
    else:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    return cos - beta * d.pow(gamma)
