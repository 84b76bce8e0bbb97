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


def column_indices(columns, feature_names, n_features, *, parameter):
    """Indices of the columns named or indexed by a parameter such as ``random_slopes``.

    Parameters
    ----------
    columns : str, int, list of str or int, or None
        The parameter's value: names (when ``X`` had column names) or indices.
    feature_names : list of str
        The fitted ``feature_names_in_`` (empty when ``X`` had none).
    n_features : int
    parameter : str
        The parameter's name, for the error messages.

    Raises
    ------
    ValueError
        For an unknown name, an index out of range or a column listed twice.
    TypeError
        For an entry that is neither a name nor an index.
    """
    what = parameter.removesuffix("s").replace("_", " ") + " column"
    if columns is None:
        return []
    if isinstance(columns, str | numbers.Integral):
        columns = [columns]
    names = list(feature_names)
    indices = []
    for c in columns:
        if isinstance(c, str):
            if c not in names:
                where = f"X's columns are {names}" if names else "X has no column names"
                raise ValueError(f"{what} {c!r} is not in X: {where}.")
            indices.append(names.index(c))
        elif isinstance(c, numbers.Integral) and not isinstance(c, bool):
            if not 0 <= c < n_features:
                raise ValueError(
                    f"{what} index {c} is out of range for X with "
                    f"{n_features} feature(s)."
                )
            indices.append(int(c))
        else:
            raise TypeError(f"{what}s must be names (str) or indices (int); got {c!r}.")
    if len(set(indices)) != len(indices):
        raise ValueError(f"{parameter} lists a column twice: {list(columns)}.")
    return indices
