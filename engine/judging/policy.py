"""Gate policies: a TOML file of rules over the columns of a run.

A policy is a `[policy]` table and one `[[rule]]` table per rule::

    [policy]
    name = "golden set"
    pass_score = 100          # optional, see pixgate.config.GATE_PASS_SCORE
    marginal_score = 75       # optional, see pixgate.config.GATE_MARGINAL_SCORE
    require_known_weights = true  # optional: LPIPS from any weights but torchvision's
                                  # published file fails the verdict
    require_lpips = true      # optional: a run scored with --no-lpips fails the verdict;
                              # without it, its LPIPS rules are skipped and the verdict says so

    [[rule]]
    name = "LPIPS p95"        # optional; defaults to "<column> <stat>"
    column = "lpips"
    stat = "p95"              # mean, median, min, max, p0..p100, rate, each, median_change
    op = "<="                 # <, <=, >, >=, and for `each` also ==, !=
    pass = 0.15
    marginal = 0.25           # optional, looser than `pass`
    weight = 2                # optional, default 1
    critical = true           # optional: a failure fails the whole verdict
    allow_nodata = false      # optional: a missing or all-null column is skipped, not failed
    tolerance = 0.02          # optional, `each` only: share of pairs (0..1) that may lie
                              # beyond `pass` (not beyond `marginal`); default 0

Parsing validates everything a run cannot tell (unknown keys and columns, operators,
types of bounds) and raises `PolicyError` naming the file and line at fault. This module
needs only the standard library.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pixgate import config
from pixgate.runs import schema

#: Aggregate statistics over a column's non-null values.
AGGREGATES: Final = ("mean", "median", "min", "max")
#: Share of true values of a boolean column (0..1).
RATE: Final = "rate"
#: A per-pair rule: every row's value must satisfy the bound.
EACH: Final = "each"
#: Relative change of the median against another run (`gate --against`), judged by a
#: one-sided Mann-Whitney U test.
MEDIAN_CHANGE: Final = "median_change"

ORDER_OPS: Final = ("<", "<=", ">", ">=")
EQUALITY_OPS: Final = ("==", "!=")

_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d+)?)")
_RULE_KEYS: Final = (
    "name",
    "column",
    "stat",
    "op",
    "pass",
    "marginal",
    "weight",
    "critical",
    "allow_nodata",
    "alpha",
    "tolerance",
)
_POLICY_KEYS: Final = (
    "name",
    "description",
    "pass_score",
    "marginal_score",
    "require_known_weights",
    "require_lpips",
)


class PolicyError(ValueError):
    """A policy file that cannot be used, with the line at fault when one is known."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Rule:
    """One validated rule.

    Attributes:
        name: Label shown in the verdict.
        column: Column the rule reads.
        dtype: The column's Arrow type name, from the schema.
        stat: One of `AGGREGATES`, `pNN`, `RATE`, `EACH` or `MEDIAN_CHANGE`.
        op: Comparison between the observed value and the bounds.
        pass_bound: Bound for a pass (number, bool or string, by column type).
        marginal_bound: Looser bound for a marginal result, or None.
        weight: Share of the score this rule carries.
        critical: A failure fails the verdict whatever the score.
        allow_nodata: A missing or all-null column skips the rule instead of failing it.
        alpha: Significance level of `median_change` rules.
        line: Line of the rule's header in the policy file (None for implicit rules).
        tolerance: For `each` rules, the share of judged pairs (0..1, rounded down to
            whole pairs) that may lie beyond the pass bound, but not beyond `marginal`,
            with the rule still passing (its note counts them); 0, the default, judges
            every pair.
    """

    name: str
    column: str
    dtype: str
    stat: str
    op: str
    pass_bound: float | bool | str
    marginal_bound: float | None
    weight: float
    critical: bool
    allow_nodata: bool
    alpha: float
    line: int | None
    tolerance: float = 0.0

    @property
    def quantile(self) -> float | None:
        """The quantile (0..1) of a `pNN` rule, else None."""
        match = _PERCENTILE.fullmatch(self.stat)
        return float(match.group(1)) / 100.0 if match else None

    @property
    def per_pair(self) -> bool:
        """Whether single pairs can break the rule (everything but `median_change`)."""
        return self.stat != MEDIAN_CHANGE


@dataclass(frozen=True)
class Policy:
    """A validated policy.

    Attributes:
        name: The policy's name (its file stem when not given).
        description: Free text from the policy.
        pass_score: Weighted score at or above which the verdict is pass.
        marginal_score: Weighted score at or above which the verdict is marginal.
        rules: The rules, in file order, after any implicit rule.
        path: The file it was read from.
        require_known_weights: A run whose LPIPS used weights other than torchvision's
            published file fails (the critical rule `KNOWN_WEIGHTS_RULE`).
        require_lpips: A run scored without LPIPS on purpose (`--no-lpips`) fails (the
            critical rule `LPIPS_SCORED_RULE`); without it, such a run's LPIPS rules are
            skipped, and the verdict says so.
    """

    name: str
    description: str
    pass_score: float
    marginal_score: float
    rules: tuple[Rule, ...]
    path: Path
    require_known_weights: bool = False
    require_lpips: bool = False


class _Lines:
    """Finds the line of a rule's header and of its keys in the raw TOML text.

    tomllib reports positions only for syntax errors; for a well-formed file whose content
    is wrong this maps `[[rule]]` tables (in file order) and their `key =` lines back to
    line numbers. Rules written as inline tables fall back to no line.
    """

    _HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
    _TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self.headers = [i + 1 for i, line in enumerate(self._lines) if self._HEADER.match(line)]

    def _span(self, index: int) -> tuple[int, int] | None:
        if index >= len(self.headers):
            return None
        start = self.headers[index]
        end = start
        while end < len(self._lines) and not self._TABLE.match(self._lines[end]):
            end += 1
        return start, end

    def rule(self, index: int) -> int | None:
        span = self._span(index)
        return span[0] if span else None

    def key(self, index: int, key: str) -> int | None:
        span = self._span(index)
        if span is None:
            return None
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
        for number in range(span[0] + 1, span[1] + 1):
            if pattern.match(self._lines[number - 1]):
                return number
        return span[0]

    def top(self, table: str, key: str) -> int | None:
        in_table = False
        header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number, line in enumerate(self._lines, start=1):
            if self._TABLE.match(line):
                in_table = bool(header.match(line))
            elif in_table and pattern.match(line):
                return number
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _allowed_stats(dtype: str) -> tuple[str, ...]:
    kind = schema.dtype_kind(dtype)
    if kind == "number":
        return (*AGGREGATES, "pNN", EACH, MEDIAN_CHANGE)
    if kind == "bool":
        return (RATE, EACH)
    return (EACH,)


def _stat_applies(stat: str, allowed: tuple[str, ...]) -> bool:
    if stat in allowed:
        return True
    match = _PERCENTILE.fullmatch(stat)
    return "pNN" in allowed and match is not None and float(match.group(1)) <= 100.0


def _parse_rule(raw: object, index: int, lines: _Lines, path: Path, types: dict[str, str]) -> Rule:
    line = lines.rule(index)
    label = f"rule {index + 1}"

    def fail(message: str, key: str | None = None) -> PolicyError:
        at = lines.key(index, key) if key else line
        return PolicyError(path, f"{label}: {message}", at)

    if not isinstance(raw, dict):
        raise fail(f"must be a table of keys, got {type(raw).__name__}")
    for key in raw:
        if key not in _RULE_KEYS:
            hint = difflib.get_close_matches(key, _RULE_KEYS, n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            raise fail(f"unknown key {key!r}{did} Allowed keys: {', '.join(_RULE_KEYS)}", key)
    if "name" in raw:
        if not isinstance(raw["name"], str) or not raw["name"].strip():
            raise fail(f"'name' must be a non-empty string, got {raw['name']!r}", "name")
        label = f"rule {index + 1} ({raw['name']!r})"

    column = raw.get("column")
    if not isinstance(column, str):
        raise fail(f"'column' must name a column as a string, got {column!r}", "column" if "column" in raw else None)
    if column not in types:
        hint = difflib.get_close_matches(column, list(types), n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else f"; known columns: {', '.join(types)}"
        raise fail(f"unknown column {column!r}{did}", "column")
    dtype = types[column]
    kind = schema.dtype_kind(dtype)

    stat = raw.get("stat")
    allowed = _allowed_stats(dtype)
    if not isinstance(stat, str) or not _stat_applies(stat, allowed):
        raise fail(
            f"stat {stat!r} does not apply to {column!r} ({dtype}); use one of {', '.join(allowed)}"
            + (" (pNN: a percentile from p0 to p100, e.g. p95)" if "pNN" in allowed else ""),
            "stat" if "stat" in raw else None,
        )

    op = raw.get("op")
    ops: tuple[str, ...] = ORDER_OPS
    if stat == EACH:
        ops = ORDER_OPS + EQUALITY_OPS if kind == "number" else EQUALITY_OPS
    if not isinstance(op, str) or op not in ops:
        key = "op" if "op" in raw else None
        raise fail(f"op {op!r} does not apply to stat {stat!r}; use one of {', '.join(ops)}", key)

    if "pass" not in raw:
        raise fail("'pass' (the bound for a pass) is required")
    bound = raw["pass"]
    if stat == EACH and kind == "bool":
        if not isinstance(bound, bool):
            raise fail(f"'pass' must be true or false for bool column {column!r}, got {bound!r}", "pass")
    elif stat == EACH and kind == "string":
        if not isinstance(bound, str):
            raise fail(f"'pass' must be a string for string column {column!r}, got {bound!r}", "pass")
        if column == schema.STATUS.name and bound not in schema.STATUSES:
            raise fail(f"'pass' {bound!r} is not a status; statuses are {', '.join(schema.STATUSES)}", "pass")
    elif not _is_number(bound):
        raise fail(f"'pass' must be a finite number for stat {stat!r}, got {bound!r}", "pass")
    elif stat == RATE and not 0.0 <= float(bound) <= 1.0:
        raise fail(f"'pass' for a rate must lie in 0..1, got {bound!r}", "pass")
    if isinstance(bound, int) and not isinstance(bound, bool):
        bound = float(bound)

    marginal = raw.get("marginal")
    if marginal is not None:
        if op not in ORDER_OPS or not _is_number(marginal):
            raise fail(
                f"'marginal' needs a numeric bound and one of {', '.join(ORDER_OPS)}; got {marginal!r} with op {op!r}",
                "marginal",
            )
        marginal = float(marginal)
        looser = marginal >= float(bound) if op in ("<", "<=") else marginal <= float(bound)
        if not looser:
            side = "at or above" if op in ("<", "<=") else "at or below"
            raise fail(f"'marginal' {marginal} must be {side} 'pass' {bound} for op {op!r}", "marginal")

    weight = raw.get("weight", 1.0)
    if not _is_number(weight) or weight <= 0:
        raise fail(f"'weight' must be a positive number, got {weight!r}", "weight")
    for flag in ("critical", "allow_nodata"):
        if not isinstance(raw.get(flag, False), bool):
            raise fail(f"{flag!r} must be true or false, got {raw[flag]!r}", flag)
    alpha = raw.get("alpha", config.GATE_ALPHA)
    if "alpha" in raw and stat != MEDIAN_CHANGE:
        raise fail(f"'alpha' applies only to stat {MEDIAN_CHANGE!r}, not {stat!r}", "alpha")
    if not _is_number(alpha) or not 0.0 < alpha < 0.5:
        raise fail(f"'alpha' must be a significance level between 0 and 0.5, got {alpha!r}", "alpha")

    tolerance = raw.get("tolerance", 0.0)
    if "tolerance" in raw and stat != EACH:
        raise fail(f"'tolerance' applies only to stat {EACH!r}, not {stat!r}", "tolerance")
    if not _is_number(tolerance) or not 0.0 <= tolerance < 1.0:
        raise fail(f"'tolerance' must be a share of pairs from 0 up to 1 (not 1), got {tolerance!r}", "tolerance")

    pretty = op if stat != EACH else f"each {op}"
    return Rule(
        name=raw.get("name") or f"{column} {stat if stat != EACH else pretty}",
        column=column,
        dtype=dtype,
        stat=stat,
        op=op,
        pass_bound=bound,
        marginal_bound=marginal,
        weight=float(weight),
        critical=bool(raw.get("critical", False)),
        allow_nodata=bool(raw.get("allow_nodata", False)),
        alpha=float(alpha),
        line=line,
        tolerance=float(tolerance),
    )


def _implicit(name: str, column: str, dtype: str, value: bool | str, weight: float = 1.0) -> Rule:
    """A critical rule a policy gets without writing it: every pair's `column` == `value`."""
    return Rule(
        name=name,
        column=column,
        dtype=dtype,
        stat=EACH,
        op="==",
        pass_bound=value,
        marginal_bound=None,
        weight=weight,
        critical=True,
        allow_nodata=False,
        alpha=config.GATE_ALPHA,
        line=None,
    )


#: Added in front of a policy's rules when none of them reads `status`, so that an errored
#: or missing pair can never pass a gate unseen.
IMPLICIT_STATUS_RULE: Final = _implicit("every pair scored", schema.STATUS.name, schema.STATUS.dtype, schema.STATUS_OK)
#: The rule `require_known_weights = true` adds: judged on the run's metadata
#: (pixgate.runs.schema.META_WEIGHTS_KNOWN), not on a column.
#: It only blocks: it carries no weight, so turning it on never moves a score.
KNOWN_WEIGHTS_RULE: Final = _implicit("known backbone weights", schema.META_WEIGHTS_KNOWN, "bool", True, weight=0.0)
#: The rule `require_lpips = true` adds: judged on the run's settings (`no_lpips`), not on
#: a column; like `KNOWN_WEIGHTS_RULE` it only blocks.
LPIPS_SCORED_RULE: Final = _implicit("LPIPS scored", schema.LPIPS.name, "bool", True, weight=0.0)


def parse_policy(text: str, path: Path) -> Policy:
    """Validate a policy's TOML text.

    Args:
        text: The file's content.
        path: Where it came from (used in messages and as the default name).

    Raises:
        PolicyError: Syntax errors, values nested or numbered beyond what the parser
            takes, unknown keys or columns, inapplicable stats or operators, bounds of
            the wrong type, or no rules at all.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise PolicyError(path, f"not valid TOML: {exc}", int(match.group(1)) if match else None) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise PolicyError(path, "not a policy: values nested too deeply to parse") from None
    except ValueError as exc:  # an integer of more digits than sys.get_int_max_str_digits()
        raise PolicyError(path, f"not valid TOML: a value cannot be parsed ({exc})") from None
    lines = _Lines(text)
    for key in data:
        if key not in ("policy", "rule"):
            raise PolicyError(path, f"unknown table {key!r}; a policy has a [policy] table and [[rule]] tables")
    head = data.get("policy", {})
    if not isinstance(head, dict):
        raise PolicyError(path, "'policy' must be a table ([policy])")
    for key in head:
        if key not in _POLICY_KEYS:
            raise PolicyError(
                path, f"unknown key {key!r} in [policy]; allowed: {', '.join(_POLICY_KEYS)}", lines.top("policy", key)
            )
    scores = {}
    for key, default in (("pass_score", config.GATE_PASS_SCORE), ("marginal_score", config.GATE_MARGINAL_SCORE)):
        value = head.get(key, default)
        if not _is_number(value) or not 0 <= value <= 100:
            raise PolicyError(path, f"{key!r} must be a number from 0 to 100, got {value!r}", lines.top("policy", key))
        scores[key] = float(value)
    if scores["marginal_score"] > scores["pass_score"]:
        raise PolicyError(
            path,
            f"'marginal_score' {scores['marginal_score']} is above 'pass_score' {scores['pass_score']}",
            lines.top("policy", "marginal_score"),
        )
    switches = {key: head.get(key, False) for key in ("require_known_weights", "require_lpips")}
    for key, value in switches.items():
        if not isinstance(value, bool):
            raise PolicyError(path, f"'{key}' must be true or false, got {value!r}", lines.top("policy", key))
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError(path, "no [[rule]] tables: a policy without rules cannot fail anything")
    types = schema.column_types()
    rules = [_parse_rule(raw, i, lines, path, types) for i, raw in enumerate(raw_rules)]
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            raise PolicyError(
                path,
                f"two rules are named {rule.name!r} (lines {seen[rule.name].line} and {rule.line}); a verdict names "
                "the rules a pair broke by name: give each its own `name`",
                rule.line,
            )
        seen[rule.name] = rule
    if not any(rule.column == schema.STATUS.name for rule in rules):
        rules.insert(0, IMPLICIT_STATUS_RULE)
    return Policy(
        name=str(head.get("name") or path.stem),
        description=str(head.get("description", "")),
        pass_score=scores["pass_score"],
        marginal_score=scores["marginal_score"],
        rules=tuple(rules),
        path=path,
        require_known_weights=switches["require_known_weights"],
        require_lpips=switches["require_lpips"],
    )


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file.

    Raises:
        PolicyError: The file cannot be read or is not a valid policy.
    """
    from pixgate.safe_io import UnsafeInputError, read_text

    try:
        text = read_text(path)  # a regular file of bounded size: policies arrive in pull requests too
    except UnsafeInputError as exc:
        raise PolicyError(path, f"cannot read the policy: {exc}") from None
    return parse_policy(text, path)


__all__ = [
    "AGGREGATES",
    "EACH",
    "EQUALITY_OPS",
    "IMPLICIT_STATUS_RULE",
    "KNOWN_WEIGHTS_RULE",
    "LPIPS_SCORED_RULE",
    "MEDIAN_CHANGE",
    "ORDER_OPS",
    "RATE",
    "Policy",
    "PolicyError",
    "Rule",
    "load_policy",
    "parse_policy",
]
