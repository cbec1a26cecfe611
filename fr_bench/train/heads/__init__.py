"""Loss heads, one module per family, behind a registry (``build_head``, ``list_heads``, ``register_head``).

=================  =============================================================  ==============================
name               what                                                           module
=================  =============================================================  ==============================
softmax            linear layer with bias + cross-entropy                         :mod:`.softmax`
center             softmax + centre loss (lambda 0.003, alpha 0.5)                :mod:`.softmax`
sphereface         A-Softmax, m 4, annealed lambda (1000, 0.12, 1, floor 5)        :mod:`.sphereface`
cosface            s (cos - m), s 64, m 0.35                                      :mod:`.angular`
arcface            s cos(theta + m), s 64, m 0.5, arcface_torch fallback          :mod:`.angular`
magface            adaptive margin m(a), a in [10, 110], lambda_g 35, s 64        :mod:`.magface`
unpg               UNPG on cosface / arcface / magface (``base=``), w 1.5         :mod:`.unpg`
unpg_<base>        the same with the base fixed (cosface, arcface, magface)       :mod:`.unpg`
groupface          ArcFace + 0.1 group loss (takes ``model.forward_train(x)``)   :mod:`.groupface`
ir_softmax         IR-Softmax on sphereface / cosface (``base=``)                 :mod:`.ir_softmax`
ir_sphereface      IR-Softmax on SphereFace                                       :mod:`.ir_softmax`
ir_cosface         IR-Softmax on CosFace                                          :mod:`.ir_softmax`
=================  =============================================================  ==============================

Every margin head (and the wrappers) has ``margin_logits(cos, labels, norms=None) -> scaled logits``: the margin
applied to precomputed cosines (B, C) (Partial FC computes those on its shard). ``norms`` are the raw feature norms
||x|| (B,); SphereFace and MagFace require them, CosFace/ArcFace ignore them. Rows labelled -1 get no margin.
Heads with a trainer hook have ``on_step(step)`` (SphereFace's lambda, forwarded by the wrappers).
"""

from fr_bench.train.heads import angular, groupface, ir_softmax, magface, softmax, sphereface, unpg
from fr_bench.train.heads.base import CosineHead, Head
from fr_bench.train.heads.margins import margin_target
from fr_bench.train.heads.registry import (
    HeadConfigError,
    build_head,
    check_params,
    head_defaults,
    list_heads,
    register_head,
)

register_head("softmax", softmax.softmax)
register_head("center", softmax.center)
register_head("sphereface", sphereface.sphereface)
register_head("cosface", angular.cosface)
register_head("arcface", angular.arcface)
register_head("magface", magface.magface)
register_head("unpg", unpg.unpg)
register_head("groupface", groupface.groupface)
register_head("ir_softmax", ir_softmax.ir_softmax)
register_head("ir_sphereface", ir_softmax.ir_sphereface)
register_head("ir_cosface", ir_softmax.ir_cosface)


def _unpg_fixed(base: str):
    def factory(embedding_size: int, num_classes: int, *, w: float = 1.5, gather: bool = False, **base_params):
        if "base" in base_params:
            raise HeadConfigError(f"head 'unpg_{base}' fixes base={base!r}; use 'unpg' to choose the base")
        return unpg.unpg(embedding_size, num_classes, base=base, w=w, gather=gather, **base_params)

    factory.__name__ = f"unpg_{base}"
    factory.__doc__ = f"UNPG on {base}."
    return factory


for _base in unpg.UNPG_BASES:
    register_head(f"unpg_{_base}", _unpg_fixed(_base))

__all__ = [
    "CosineHead",
    "Head",
    "HeadConfigError",
    "build_head",
    "check_params",
    "head_defaults",
    "list_heads",
    "margin_target",
    "register_head",
]
