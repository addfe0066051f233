"""Load the neural-tangents (NT) oracle fixtures of tests/fixtures/nt/ (pure numpy).

The fixtures are written by `benchmarks/nt_fixtures.py` in a pinned NT 0.6.5
environment; their layout is described in tests/fixtures/nt/README.md.  Tests
use them as

    import nt_fixtures
    cases = nt_fixtures.load_cases("analytic_kernels")
    for case in cases:
        kernel_fn = nt_fixtures.build(case["expr"], stax=jaxdl.stax, jnp=jnp, np=np)[2]
        ...

Each case is a plain dict.  JSON lists come back as tuples (NT's `get`,
`pattern`, `trace_axes` are tuples) and `{"__array__": entry}` references are
replaced by the stored arrays.
"""

import functools
import json
import pathlib

import numpy as np

FIXTURE_DIR = pathlib.Path(__file__).resolve().parent / "fixtures" / "nt"
FIXTURE_NAMES = ("analytic_kernels", "empirical", "predict")


def fixture_path(name: str) -> pathlib.Path:
    """Path of fixture file `name` (one of FIXTURE_NAMES)."""
    if name not in FIXTURE_NAMES:
        raise ValueError(f"nt_fixtures.fixture_path: expected one of {FIXTURE_NAMES}, got {name!r}")
    return FIXTURE_DIR / f"{name}.npz"


def load_index(name: str) -> dict:
    """The file's raw JSON index: versions, seed, and one record per case."""
    with np.load(fixture_path(name), allow_pickle=False) as data:
        return json.loads(str(data["__index__"]))


@functools.lru_cache(maxsize=None)
def _load(name: str) -> tuple:
    with np.load(fixture_path(name), allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != "__index__"}
        index = json.loads(str(data["__index__"]))
    for array in arrays.values():
        array.flags.writeable = False  # shared between cases and across calls
    return tuple(_assemble(record, arrays) for record in index["cases"])


def load_cases(name: str, family: str | None = None) -> list[dict]:
    """All cases of fixture file `name`, optionally only those of one `family`.

    Every case has `id`, `name`, `family`, `expr` (None where the file has no
    expressions), `kwargs` (dict), `call_kwargs` (dict), `x1`, `x2` (None when
    absent), `params`, `inputs` and `outputs` (nested dicts of arrays; `outputs`
    is empty when NT raised), `error` (None, or NT's exception `type` and
    `message`), `kernel_meta` (None or dict), `nt_nonfinite` (tuple of output
    names where NT itself returned NaN/inf) and `reference_implementation`
    (None, or the NtkImplementation whose NT values are stored).  Arrays are
    read-only float64 (integer for index patterns).
    """
    cases = [dict(case) for case in _load(name)]
    if family is not None:
        cases = [case for case in cases if case["family"] == family]
        if not cases:
            raise ValueError(f"nt_fixtures.load_cases: no family {family!r} in {name!r}")
    return cases


def case_ids(cases: list[dict]) -> list[str]:
    """Readable pytest ids: `c0042-<name>`."""
    return [f"{case['id']}-{case['name']}" for case in cases]


def build(expr: str, **namespace):
    """Evaluates a fixture's expression string in `namespace` (e.g. stax=..., jnp=..., np=...)."""
    return eval(expr, dict(namespace))  # noqa: S307 - strings come from the committed fixtures


def _assemble(record: dict, arrays: dict) -> dict:
    fields = {field: arrays[key] for field, key in record["arrays"].items()}

    def subtree(group: str) -> dict:
        tree: dict = {}
        for field, value in fields.items():
            if field.startswith(group + "/"):
                *parents, leaf = field[len(group) + 1:].split("/")
                node = tree
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = value
        return tree

    return {
        "id": record["id"],
        "name": record["name"],
        "family": record["family"],
        "expr": record.get("expr"),
        "kwargs": _decode(record.get("kwargs", {}), arrays),
        "call_kwargs": _decode(record.get("call_kwargs", {}), arrays),
        "x1": fields.get("x1"),
        "x2": fields.get("x2"),
        "params": subtree("params"),
        "inputs": subtree("inputs"),
        "outputs": subtree("out"),
        "error": record.get("error"),
        "kernel_meta": record.get("kernel_meta"),
        "nt_nonfinite": tuple(record.get("nt_nonfinite", ())),
        "reference_implementation": record.get("reference_implementation"),
    }


def _decode(value, arrays: dict):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_decode(item, arrays) for item in value)
    return value
