"""A small declarative validator for estimator parameters.

scikit-learn's ``_param_validation`` is private (scikit-learn issue #28963),
so estimators here declare ``_parameter_constraints`` with the rules below and
call :func:`validate_params` at the start of ``fit``.
"""

import numbers


class Options:
    """One of a fixed set of values."""

    def __init__(self, *values):
        self.values = values

    def is_satisfied_by(self, value):
        return isinstance(value, str | bool | type(None)) and value in self.values

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class Interval:
    """A real or integral number within bounds (closed unless said)."""

    def __init__(self, kind, low=None, high=None, *, closed="both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value):
        kinds = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kinds):
            return False
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high
            if self.closed in ("both", "right")
            else value < self.high
        )
        return low_ok and high_ok

    def __str__(self):
        name = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{name} in the range {left}{low}, {high}{right}"


class InstanceOf:
    """An instance of one of the given types."""

    def __init__(self, *types, description=None):
        self.types, self.description = types, description

    def is_satisfied_by(self, value):
        if bool in self.types:
            return isinstance(value, self.types)
        return isinstance(value, self.types) and not isinstance(value, bool)

    def __str__(self):
        if self.description:
            return self.description
        return "an instance of " + " or ".join(t.__name__ for t in self.types)


def validate_params(estimator):
    """Check every parameter against ``estimator._parameter_constraints``.

    Raises
    ------
    ValueError
        Naming the parameter, what it must be, and what it got.
    """
    for name, rules in estimator._parameter_constraints.items():
        value = getattr(estimator, name)
        if any(rule.is_satisfied_by(value) for rule in rules):
            continue
        allowed = " or ".join(str(rule) for rule in rules)
        raise ValueError(
            f"The {name!r} parameter of {type(estimator).__name__} must be "
            f"{allowed}. Got {value!r} instead."
        )
