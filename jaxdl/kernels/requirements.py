"""Which input kernel a whole network needs: diagonal or full batch/spatial covariances.

Follows neural-tangents' requirement algebra so that jaxdl picks the same
layouts (and hence returns arrays of the same shapes): each layer states
whether its *input* may be diagonal-only along the spatial axes and whether
the network *output* from it on may be; serial composition folds with ``>>``,
parallel branches with ``&``; the input kernel is diagonal-spatial iff the
folded requirement says ``input == YES and output > NO``.
"""

from __future__ import annotations

import dataclasses

NO, MAYBE, YES = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Diagonal:
    """``input``: may this layer's input be diagonal-only; ``output``: may the
    network output from here on be diagonal-only."""

    input: int = YES
    output: int = NO

    def __rshift__(self, other: Diagonal) -> Diagonal:
        """Requirement of ``other`` applied after ``self``."""
        if self.output == YES:
            return self
        if self.output > NO and other.input > NO:
            new_input = self.input
        elif self.output == NO and other.input < YES:
            new_input = NO
        else:
            new_input = min(self.input, other.input)
        return Diagonal(new_input, other.output)

    def __and__(self, other: Diagonal) -> Diagonal:
        return Diagonal(min(self.input, other.input), min(self.output, other.output))

    def __bool__(self) -> bool:
        return self.input == YES and self.output > NO


_CONV_KINDS = ("Conv", "ConvTranspose", "ConvLocal")
_ELEMENTWISE_DIAGONAL = Diagonal()


def conv_dimension_numbers(hyper: dict, n_spatial: int) -> tuple[str, str, str]:
    """neural-tangents' default ``('N' + spatial + 'C', spatial + 'IO', same)``."""
    dimension_numbers = hyper.get("dimension_numbers")
    if dimension_numbers is not None:
        return tuple(dimension_numbers)
    letters = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "NCIO")[:n_spatial]
    return ("N" + letters + "C", letters + "IO", "N" + letters + "C")


def layer_requirements(spec) -> dict:
    """The requirements of one spec (recursing into combinators)."""
    kind, h = spec.kind, spec.hyper
    axes = {"batch_axis": h.get("batch_axis", 0), "channel_axis": h.get("channel_axis", -1)}
    if kind == "serial":
        return fold([layer_requirements(c) for c in spec.children], "serial")
    if kind == "repeat":  # NT: the repeated layer's own requirements
        return layer_requirements(spec.children[0])
    if kind == "parallel":
        return fold([layer_requirements(c) for c in spec.children], "parallel")
    if kind == "Dense":
        return {**axes, "diagonal_spatial": Diagonal()}
    if kind in _CONV_KINDS:
        lhs_spec = conv_dimension_numbers(h, len(h["filter_shape"]))[0]
        output = NO if kind != "ConvLocal" else MAYBE
        return {
            "batch_axis": lhs_spec.index("N"),
            "channel_axis": lhs_spec.index("C"),
            "diagonal_spatial": Diagonal(output=output),
        }
    if kind in ("AvgPool", "SumPool"):
        return {**axes, "diagonal_spatial": Diagonal(input=MAYBE)}
    if kind in ("GlobalAvgPool", "GlobalSumPool"):
        return {**axes, "diagonal_spatial": Diagonal(input=MAYBE, output=YES)}
    if kind == "Flatten":
        return {
            "batch_axis": h.get("batch_axis", 0),
            "channel_axis": None,
            "diagonal_spatial": Diagonal(output=YES),
        }
    if kind == "LayerNorm":
        return axes
    if kind == "Dropout":
        return {"use_dropout": True} if h.get("mode", "train") == "train" else {}
    if kind == "GlobalSelfAttention":
        return {**axes, "diagonal_spatial": Diagonal(input=NO)}
    if kind == "Aggregate":
        return {**axes, "diagonal_spatial": Diagonal(input=NO, output=NO)}
    if kind == "SimpleRNN":  # mixes all time steps; the last-step read-out has no time axis
        return {"batch_axis": 0, "channel_axis": -1,
                "diagonal_spatial": Diagonal(input=NO, output=NO if h.get("return_sequences") else YES)}
    if kind in ("DotGeneral", "ImageResize", "Index", "Custom"):
        return _family_requirements(kind, h, axes)
    from jaxdl.kernels.elementwise_rules import ELEMENTWISE_KINDS

    if kind in ELEMENTWISE_KINDS:
        return {"diagonal_spatial": _ELEMENTWISE_DIAGONAL}
    return {}


def fold(reqs: list[dict], how: str) -> dict:
    """Combine requirements of layers in series (``how="serial"``) or in parallel."""
    out: dict = {}
    for req in reqs:
        for key, value in req.items():
            if key in ("batch_axis", "channel_axis", "use_dropout"):
                out.setdefault(key, value)
            elif key == "diagonal_spatial":
                if key not in out:
                    out[key] = value
                elif how == "serial":
                    out[key] = out[key] >> value
                else:
                    out[key] = out[key] & value
    return out


def _family_requirements(kind: str, h: dict, axes: dict) -> dict:
    """Requirements of ``DotGeneral``, ``ImageResize``, ``Index`` and ``@stax.layer`` layers
    (neural-tangents': full spatial covariances where positions get mixed)."""
    if kind == "Custom":
        return dict(h["requirements"])
    if kind == "Index":
        return axes
    if kind == "DotGeneral":
        if h["other"] is None:
            return {}
        (lhs_c, rhs_c), _ = h["dimension_numbers"]
        contracted = rhs_c if h["is_lhs"] else lhs_c
        return {**axes, "diagonal_spatial": Diagonal(input=NO if contracted else YES)}
    shape, batch, channel = h["shape"], axes["batch_axis"], axes["channel_axis"]
    resized = any(d != -1 for i, d in enumerate(shape) if i not in (batch % len(shape), channel % len(shape)))
    return {**axes, "diagonal_spatial": Diagonal(input=NO if resized else YES)}
