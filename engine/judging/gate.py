"""Judge a run against a policy: pass, marginal or fail.

Each rule of the policy (pixgate.judging.policy) is evaluated on the run's Arrow table:

- aggregates (`mean`, `median`, `min`, `max`, `pNN`) and `rate` over the column's
  non-null values, compared with the rule's pass bound and optional marginal bound;
- `each`: every row must meet the bound; rows beyond the marginal bound fail the rule,
  rows only beyond the pass bound make it marginal;
- `median_change`: the relative change of the median against another run
  (median_new / median_old - 1), judged as automated canary analysis judges a metric: a
  one-sided Mann-Whitney U test first asks whether this run is shifted at all in the
  direction the bound guards (up for `<=`, down for `>=`); only when it is, at the rule's
  significance level, is the change graded against the bounds. Noise alone therefore does
  not fail a gate while a real shift beyond the bound does (tests/judging/test_gate.py measures
  both rates), and a rule is "no data" when its samples are too small to ever reach that
  significance.

A rule whose column is missing from the run, or null in every row, is "no data": it fails
unless the rule allows it, in which case it is skipped and carries no weight. Null values
never vanish silently: every result reports how many rows had a value. A row whose value
is missing because the column does not apply to it (`text_pass` of a baseline without
text: pixgate.runs.schema.NOT_APPLICABLE) meets the rule, and the result says how many did.
Rows that are not
`ok` are judged by the rules on `status` (an implicit critical one when the policy has
none, see pixgate.judging.policy.IMPLICIT_STATUS_RULE).

Score: 100 * sum(weight * s) / sum(weight) over the judged rules, s = 1 for pass, 0.5 for
marginal, 0 for fail. Verdict: fail when a critical rule fails; otherwise pass at or above
the policy's pass score, marginal at or above its marginal score, else fail.

Needs pyarrow, numpy and scipy only: no torch, no GPU.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pixgate import __version__, config
from pixgate.judging.policy import EACH, KNOWN_WEIGHTS_RULE, LPIPS_SCORED_RULE, MEDIAN_CHANGE, RATE, Policy, Rule
from pixgate.runs import schema
from pixgate.runs.files import VERDICT_RUN_SHA256, run_metadata

if TYPE_CHECKING:
    import pyarrow as pa

PASS, MARGINAL, FAIL, VERDICTS = schema.PASS, schema.MARGINAL, schema.FAIL, schema.VERDICTS
#: A rule with no data that its policy allows to have none: reported, not scored.
SKIPPED: Final = "skipped"

_SCORE: Final = {PASS: 1.0, MARGINAL: 0.5, FAIL: 0.0}
_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# Metadata worth carrying into a verdict so that it says what it judged.
_RUN_META: Final = (
    schema.META_PIXGATE_VERSION,
    schema.META_DEVICE_NAME,
    schema.META_LPIPS_NET,
    schema.META_WEIGHTS_SHA256,
    schema.META_WEIGHTS_KNOWN,
    schema.META_STARTED_AT,
)


class GateInputError(ValueError):
    """A run that cannot be judged by a policy: its schema does not fit it (a file that
    cannot be read at all is a `pixgate.runs.files.RunFileError`)."""


@dataclass
class RuleResult:
    """What one rule found.

    Attributes:
        rule: The rule.
        result: `pass`, `marginal`, `fail` or `skipped`.
        observed: The statistic (for `each`: pairs beyond the pass bound; for
            `median_change`: the relative change), or None without data.
        n: Values judged.
        n_rows: Rows in the run.
        note: Why there is no data, or other context worth reading.
        nodata: The column was missing or had no value to judge.
        p_value: One-sided Mann-Whitney p-value of a `median_change` rule's shift.
        against_median: Median of the other run (`median_change`).
        median: Median of this run (`median_change`).
        violations: Row index -> value for rows beyond the pass bound (per-pair rules).
        shown: What was observed, in words, for a rule judged on something other than a
            column's values (the run's metadata); "" to show `observed`.
    """

    rule: Rule
    result: str
    observed: float | None
    n: int
    n_rows: int
    note: str = ""
    nodata: bool = False
    p_value: float | None = None
    against_median: float | None = None
    median: float | None = None
    violations: dict[int, Any] = field(default_factory=dict)
    shown: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the result."""
        r = self.rule
        return {
            "name": r.name,
            "column": r.column,
            "stat": r.stat,
            "op": r.op,
            "pass": r.pass_bound,
            "marginal": r.marginal_bound,
            "weight": r.weight,
            "critical": r.critical,
            "allow_nodata": r.allow_nodata,
            "tolerance": r.tolerance,
            "line": r.line,
            "result": self.result,
            "observed": _finite(self.observed),
            "shown": format_observed(self),
            "n": self.n,
            "n_rows": self.n_rows,
            "nodata": self.nodata,
            "note": self.note,
            "p_value": _finite(self.p_value),
            "median": _finite(self.median),
            "against_median": _finite(self.against_median),
            "violations": len(self.violations),
        }


@dataclass
class Verdict:
    """The gate's answer for one run.

    Attributes:
        verdict: `pass`, `marginal` or `fail`.
        score: Weighted rule score, 0..100 (0 when no rule could be judged).
        rules: One result per rule, in policy order.
        failing_pairs: Pairs that broke failing or marginal per-pair rules, worst first.
        reason: One line on how the verdict was reached.
        context: Run, policy and other run paths, status counts and run metadata.
    """

    verdict: str
    score: float
    rules: list[RuleResult]
    failing_pairs: list[dict[str, Any]]
    reason: str
    context: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON verdict: verdict, score, rules, failing_pairs, and context."""
        return {
            "verdict": self.verdict,
            "score": round(self.score, 3),
            "reason": self.reason,
            "rules": [r.to_dict() for r in self.rules],
            "failing_pairs": self.failing_pairs,
            **self.context,
        }

    def blocks(self, *, strict: bool = False) -> bool:
        """Whether this verdict stops the change: a fail always, a marginal one with `strict`."""
        return self.verdict == FAIL or (strict and self.verdict == MARGINAL)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def format_observed(res: RuleResult) -> str:
    """The observed value as people read it (in tables and the JSON verdict's `shown`)."""
    return res.shown or _observed(res)


def _observed(res: RuleResult) -> str:
    """The observed value as shown in tables and reports."""
    rule = res.rule
    if res.nodata:
        return "no data"
    if res.observed is None:
        return "-"
    if rule.stat == EACH:
        return f"{int(res.observed)} of {res.n} pairs outside"
    if rule.stat == RATE:
        return f"{100 * res.observed:.1f} %"
    if rule.stat == MEDIAN_CHANGE:
        p = f", p={res.p_value:.2g}" if res.p_value is not None else ""
        return f"{100 * res.observed:+.1f} %{p}"
    return f"{res.observed:.4g}"


def format_bound(rule: Rule) -> str:
    """The rule's bounds as shown in tables and reports."""

    def one(value: float | bool | str) -> str:
        if rule.stat in (RATE, MEDIAN_CHANGE) and isinstance(value, float):
            return f"{100 * value:+.1f} %" if rule.stat == MEDIAN_CHANGE else f"{100 * value:.1f} %"
        if isinstance(value, bool):
            return "true" if value else "false"
        return f"{value:.4g}" if isinstance(value, float) else repr(value)

    text = f"{rule.op} {one(rule.pass_bound)}"
    if rule.marginal_bound is not None:
        text += f" (marginal {rule.op} {one(rule.marginal_bound)})"
    if rule.tolerance:
        text += f", up to {_percent(rule.tolerance)} of pairs beyond"
    return text


def check_fits(table: pa.Table, policy: Policy, path: Path) -> None:
    """Check that a table can be judged by a policy.

    Raises:
        GateInputError: The file's schema version has another major number than this
            pixgate's, or a column a rule reads has a type the rule cannot use.
    """
    try:  # a table given directly has not been through `read_run`'s check
        schema.check_version(run_metadata(table).get(schema.META_SCHEMA_VERSION), path)
    except schema.TableError as exc:
        raise GateInputError(str(exc)) from None
    for rule in policy.rules:
        if rule.column not in table.column_names:
            continue
        found = schema.arrow_kind(table.schema.field(rule.column).type)
        if found not in (schema.dtype_kind(rule.dtype), "null"):
            where = f" (policy line {rule.line})" if rule.line else ""
            raise GateInputError(
                f"{path}: column {rule.column!r} holds {table.schema.field(rule.column).type}, "
                f"rule {rule.name!r}{where} needs {rule.dtype}: this file does not fit the run schema"
            )


def _column(table: pa.Table, rule: Rule) -> tuple[np.ndarray | list[Any], np.ndarray]:
    """A column's values and its validity mask (NaN counts as no value)."""
    import pyarrow as pa

    arr = table.column(rule.column).combine_chunks()
    if pa.types.is_null(arr.type):
        return np.zeros(len(arr)), np.zeros(len(arr), dtype=bool)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    kind = schema.dtype_kind(rule.dtype)
    if kind == "number":
        # An int64 past 2**53 (a file from elsewhere) is still a number, not an error.
        values = np.asarray(
            arr.cast(pa.float64(), safe=False).fill_null(0.0).to_numpy(zero_copy_only=False), dtype=float
        )
        valid &= ~np.isnan(values)
        return values, valid
    if kind == "bool":
        return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool), valid
    return arr.to_pylist(), valid


def _statistic(rule: Rule, values: np.ndarray) -> float:
    q = rule.quantile
    if q is not None:
        return float(np.quantile(values, q, method=config.GATE_QUANTILE_METHOD))
    if rule.stat == RATE:
        return float(np.mean(values.astype(float)))
    reducers: dict[str, Callable[[np.ndarray], Any]] = {
        "mean": np.mean,
        "median": np.median,
        "min": np.min,
        "max": np.max,
    }
    return float(reducers[rule.stat](values))


def _holds(op: str, values: np.ndarray | list[Any], bound: Any) -> np.ndarray:
    """Elementwise `value op bound` (NumPy for numbers and bools, Python for strings)."""
    if isinstance(values, np.ndarray):
        return np.asarray(_OPS[op](values, bound), dtype=bool)
    return np.array([_OPS[op](v, bound) for v in values], dtype=bool)


def _grade(rule: Rule, value: Any) -> str:
    if _OPS[rule.op](value, rule.pass_bound):
        return PASS
    if rule.marginal_bound is not None and _OPS[rule.op](value, rule.marginal_bound):
        return MARGINAL
    return FAIL


def _nodata(rule: Rule, n: int, n_rows: int, note: str) -> RuleResult:
    result = SKIPPED if rule.allow_nodata else FAIL
    if not rule.allow_nodata:
        note += "; the rule fails without data (set allow_nodata = true to skip it instead)"
    return RuleResult(rule, result, None, n, n_rows, note=note, nodata=True)


def _not_applicable(table: pa.Table, column: str, valid: np.ndarray) -> int:
    """Rows without a value in `column` because it does not apply to them (a baseline with
    no text has no typography to keep): not judged, and not missing data either
    (pixgate.runs.schema.NOT_APPLICABLE)."""
    if column not in schema.NOT_APPLICABLE:
        return 0
    marker, value = schema.NOT_APPLICABLE[column]
    if marker not in table.column_names:
        return 0
    said = table.column(marker).to_pylist()
    return sum(1 for i, v in enumerate(said) if v == value and not valid[i])


def _not_ok(table: pa.Table, valid: np.ndarray) -> int:
    """Rows without a value whose status is not `ok`."""
    if schema.STATUS.name not in table.column_names:
        return 0
    status = table.column(schema.STATUS.name).to_pylist()
    return sum(1 for i, v in enumerate(status) if v != schema.STATUS_OK and not valid[i])


def _na_note(n_na: int, n_rows: int) -> str:
    return f"{n_na} of {n_rows} rows not applicable: not judged, and not counted as missing"


def _min_p_value(n1: int, n2: int) -> float:
    """Smallest one-sided p-value an exact Mann-Whitney test can give for these sizes."""
    return 1.0 / math.comb(n1 + n2, n1)


def _median_change(rule: Rule, new: np.ndarray, old: np.ndarray, n_rows: int) -> RuleResult:
    from scipy.stats import mannwhitneyu

    if _min_p_value(len(new), len(old)) >= rule.alpha:
        return _nodata(
            rule,
            len(new),
            n_rows,
            f"{len(new)} values here and {len(old)} in the other run cannot reach significance {rule.alpha}",
        )
    m_new, m_old = float(np.median(new)), float(np.median(old))
    if m_old <= 0 or np.any(old < 0) or np.any(new < 0):
        return _nodata(rule, len(new), n_rows, "a relative change needs positive values (times, energy, sizes)")
    change = m_new / m_old - 1.0
    # A shift counts only in the direction the bound guards: up for an upper bound.
    side = "greater" if rule.op in ("<", "<=") else "less"
    p_value = float(mannwhitneyu(new, old, alternative=side).pvalue)
    result = _grade(rule, change) if p_value < rule.alpha else PASS
    return RuleResult(rule, result, change, len(new), n_rows, p_value=p_value, median=m_new, against_median=m_old)


def evaluate(rule: Rule, table: pa.Table, against: pa.Table | None = None) -> RuleResult:
    """Evaluate one rule on a run (and, for `median_change`, the other run)."""
    n_rows = table.num_rows
    if rule.column not in table.column_names:
        return _nodata(rule, 0, n_rows, f"column {rule.column!r} is not in the run")
    values, valid = _column(table, rule)
    n = int(valid.sum())
    n_na = _not_applicable(table, rule.column, valid)
    # A rule without values passes only when every row without one is "not applicable"
    # or not `ok` (which the status rule judges): any other null keeps it "no data".
    n_bad = _not_ok(table, valid) if n_na else 0
    if n == 0 and n_na and n_na + n_bad == n_rows and rule.stat != MEDIAN_CHANGE:
        note = _na_note(n_na, n_rows) + (f"; {n_bad} not ok, judged by the status rule" if n_bad else "")
        return RuleResult(rule, PASS, 0.0 if rule.stat == EACH else None, 0, n_rows, note=note)
    if n == 0:
        why = "the run has no rows" if n_rows == 0 else f"{rule.column!r} is null in all {n_rows} rows"
        if n_na:
            why += f" ({_na_note(n_na, n_rows)}, {n_rows - n_na} without a value)"
        return _nodata(rule, 0, n_rows, why)
    if rule.stat == MEDIAN_CHANGE:
        if against is None:
            return _nodata(rule, n, n_rows, "needs another run to compare with (gate --against)")
        if rule.column not in against.column_names:
            return _nodata(rule, n, n_rows, f"column {rule.column!r} is not in the --against run")
        old, old_valid = _column(against, rule)
        if not old_valid.any():
            return _nodata(rule, n, n_rows, f"{rule.column!r} is null in every row of the --against run")
        new_arr = np.asarray(values)[valid]
        return _median_change(rule, new_arr, np.asarray(old)[old_valid], n_rows)

    # Rows beyond the pass bound, whatever the stat: the pairs worth looking at first.
    if rule.stat == RATE:
        # A lower bound on the share of true values is broken by the false rows, an upper
        # bound by the true ones.
        breaking = rule.op in ("<", "<=")
        violations = {int(i): breaking for i in np.flatnonzero(valid) if bool(values[i]) is breaking}
    else:
        beyond = valid & ~_holds(rule.op, values, rule.pass_bound)
        violations = {int(i): _plain(values[i]) for i in np.flatnonzero(beyond)}
    missing = n_rows - n - n_na
    notes = [_na_note(n_na, n_rows)] if n_na else []
    notes += [f"{missing} of {n_rows} rows have no value"] if missing else []
    note = "; ".join(notes)
    if rule.stat == EACH:
        return _each(rule, np.asarray(values)[beyond], violations, n, n_rows, note)
    observed = _statistic(rule, np.asarray(values)[valid])
    return RuleResult(rule, _grade(rule, observed), observed, n, n_rows, note=note, violations=violations)


def _each(rule: Rule, beyond: np.ndarray, violations: dict[int, Any], n: int, n_rows: int, note: str) -> RuleResult:
    """An `each` rule's result from the values beyond its pass bound.

    A pair beyond `marginal` fails the rule whatever the tolerance; the pairs between the
    two bounds (beyond `pass` when there is no `marginal`) may number up to `tolerance`
    of the judged pairs, past which the rule is marginal (failing without `marginal`).
    """
    result = PASS
    if violations:
        hard = rule.marginal_bound is None or not bool(np.all(_holds(rule.op, beyond, rule.marginal_bound)))
        # A share of a count: the epsilon keeps 0.29 x 100 from rounding down to 28.
        allowed = math.floor(rule.tolerance * n + 1e-9)
        if len(violations) > allowed:
            result = FAIL if hard else MARGINAL
        elif hard and rule.marginal_bound is not None:
            result = FAIL
        else:
            shown = f"{len(violations)} of {n} pairs beyond the bound, within the tolerance of {allowed}"
            note = "; ".join(filter(None, [f"{shown} ({_percent(rule.tolerance)} of {n})", note]))
    return RuleResult(rule, result, float(len(violations)), n, n_rows, note=note, violations=violations)


def _percent(share: float) -> str:
    """A share as a percentage, to the digits it has (0.0005 is 0.05 %, not 0.1 %)."""
    return f"{100 * share:.4g} %"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _excess(rule: Rule, value: Any) -> float:
    """How far beyond the pass bound a value is, relative to the bound (1 for non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or isinstance(rule.pass_bound, bool | str):
        return 1.0
    return abs(float(value) - float(rule.pass_bound)) / max(abs(float(rule.pass_bound)), 1e-12)


def _failing_pairs(table: pa.Table, results: list[RuleResult]) -> list[dict[str, Any]]:
    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows

    key = schema.PAIR_ID.name if schema.PAIR_ID.name in table.column_names else schema.ID.name
    ids, status, error = col(key), col(schema.STATUS.name), col(schema.ERROR.name)
    pairs: dict[int, dict[str, Any]] = {}
    for res in results:
        if res.result not in (FAIL, MARGINAL) or not res.rule.per_pair:
            continue
        for row, value in res.violations.items():
            entry = pairs.setdefault(
                row,
                {
                    "pair_id": ids[row] if ids[row] is not None else f"row {row}",
                    "status": status[row],
                    "error": error[row],
                    "rules": [],
                    "critical": False,
                    "values": {},
                    "_excess": 0.0,
                },
            )
            entry["rules"].append(res.rule.name)
            entry["critical"] = entry["critical"] or (res.rule.critical and res.result == FAIL)
            entry["values"][res.rule.column] = value
            entry["_excess"] = max(entry["_excess"], _excess(res.rule, value))
    ranked = sorted(pairs.values(), key=lambda e: (not e["critical"], -len(e["rules"]), -e["_excess"], e["pair_id"]))
    for entry in ranked:
        del entry["_excess"]
    return ranked


def _known_weights(table: pa.Table) -> RuleResult:
    """`require_known_weights`: LPIPS from weights other than torchvision's published file
    fails, and so does a run that does not say (made before runs recorded it)."""
    meta, rule, n = run_metadata(table), KNOWN_WEIGHTS_RULE, table.num_rows
    known = meta.get(schema.META_WEIGHTS_KNOWN)
    if known == "":
        return RuleResult(rule, SKIPPED, None, 0, n, note="no LPIPS in this run", nodata=True, shown="no LPIPS")
    if known == "true":
        net = meta.get(schema.META_LPIPS_NET, "")
        return RuleResult(rule, PASS, 0.0, n, n, note=f"torchvision's {net}", shown="published file")
    sha = meta.get(schema.META_WEIGHTS_SHA256, "")[:12]
    note = (
        f"weights sha256 {sha}... are not torchvision's {meta.get(schema.META_LPIPS_NET, '')} file"
        if known == "false"
        else "the run does not record whether its weights are known"
    )
    return RuleResult(rule, FAIL, float(n), n, n, note=note, shown="not the published file")


#: What a verdict says first of a run scored with `--no-lpips` (its LPIPS rules skipped).
LPIPS_NOT_SCORED: Final = "LPIPS was not scored (--no-lpips): its rules are skipped, every other rule judged"


def _lpips_off(meta: dict[str, str]) -> bool:
    """Whether the run was scored with `--no-lpips` on purpose (its settings say so): not a
    run whose LPIPS is missing for another reason, which stays "no data"."""
    from pixgate.safe_io import loads_json

    try:
        settings = loads_json(meta.get(schema.META_SETTINGS) or "{}")
    except ValueError:
        return False
    return isinstance(settings, dict) and settings.get("no_lpips") is True


def _lpips_scored(policy: Policy, off: bool, n: int) -> RuleResult | None:
    """`require_lpips`: a run scored with `--no-lpips` fails; else its LPIPS rules that
    lack data are skipped (None: nothing to add)."""
    if not policy.require_lpips:
        return None
    if off:
        return RuleResult(LPIPS_SCORED_RULE, FAIL, float(n), n, n, note="scored with --no-lpips", shown="not scored")
    return RuleResult(LPIPS_SCORED_RULE, PASS, 0.0, n, n, shown="scored")


def judge(
    policy: Policy,
    table: pa.Table,
    against: pa.Table | None = None,
    *,
    run_path: Path | None = None,
    against_path: Path | None = None,
    comparisons: tuple[pa.Table, pa.Table] | None = None,
    run_sha256: str | None = None,
) -> Verdict:
    """Apply a policy to a run.

    Args:
        policy: A validated policy.
        table: The run.
        against: Another run for `median_change` rules (e.g. the previous engine's).
        run_path: Where the run came from, recorded in the verdict.
        against_path: Where the other run came from.
        comparisons: (new, old) tables that `median_change` rules compare instead of
            `table` and `against`, e.g. a canary's two captures; only for the columns
            they hold.
        run_sha256: The sha256 of the run file's bytes, recorded in the verdict: it binds
            the verdict to this run (`pixgate.runs.files.check_verdict_run`).

    Returns:
        The verdict with every rule's result and the failing pairs, worst first.
    """

    def tables(rule: Rule) -> tuple[pa.Table, pa.Table | None]:
        if comparisons is not None and rule.stat == MEDIAN_CHANGE and rule.column in comparisons[0].column_names:
            return comparisons
        return table, against

    meta = run_metadata(table)
    lpips_off = _lpips_off(meta)
    results = [evaluate(rule, *tables(rule)) for rule in policy.rules]
    if lpips_off and not policy.require_lpips:
        # Left out on purpose: the run is judged by every other rule, and says so.
        results = [
            dataclasses.replace(r, result=SKIPPED, note=LPIPS_NOT_SCORED)
            if r.nodata and r.rule.column == schema.LPIPS.name
            else r
            for r in results
        ]
    judged = [r for r in results if r.result != SKIPPED]
    # Critical and weightless: they can fail a verdict, never score one.
    if policy.require_known_weights:
        results.append(_known_weights(table))
    if (scored := _lpips_scored(policy, lpips_off, table.num_rows)) is not None:
        results.append(scored)
    total = sum(r.rule.weight for r in judged)
    score = 100.0 * sum(r.rule.weight * _SCORE[r.result] for r in judged) / total if total else 0.0
    critical = [r.rule.name for r in results if r.rule.critical and r.result == FAIL]
    if not judged:
        verdict, reason = FAIL, "no rule could be judged: every rule lacked data"
    elif critical:
        verdict, reason = FAIL, f"critical rule failed: {', '.join(critical)}"
    elif score >= policy.pass_score:
        verdict, reason = PASS, f"score {score:.1f} >= pass score {policy.pass_score:g}"
    elif score >= policy.marginal_score:
        verdict, reason = MARGINAL, f"score {score:.1f} below pass score {policy.pass_score:g}"
    else:
        verdict, reason = FAIL, f"score {score:.1f} below marginal score {policy.marginal_score:g}"
    if lpips_off:
        reason = f"{LPIPS_NOT_SCORED}; {reason}"
    status = table.column(schema.STATUS.name).to_pylist() if schema.STATUS.name in table.column_names else []
    context = {
        "policy": {"name": policy.name, "path": str(policy.path)},
        "run": str(run_path) if run_path else None,
        VERDICT_RUN_SHA256: run_sha256,
        "against": str(against_path) if against_path else None,
        "pairs": table.num_rows,
        # What a reader must know before the verdict: shown first by every format.
        "notices": [LPIPS_NOT_SCORED] if lpips_off else [],
        "statuses": {s: status.count(s) for s in sorted(set(status))},
        "run_metadata": {k: meta[k] for k in _RUN_META if k in meta},
        "pixgate_version": __version__,
        "judged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return Verdict(verdict, score, results, _failing_pairs(table, results), reason, context)


__all__ = [
    "FAIL",
    "LPIPS_NOT_SCORED",
    "MARGINAL",
    "PASS",
    "SKIPPED",
    "VERDICTS",
    "GateInputError",
    "RuleResult",
    "Verdict",
    "check_fits",
    "evaluate",
    "format_bound",
    "format_observed",
    "judge",
]
