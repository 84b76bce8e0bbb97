"""Response distributions and link functions of the generalised models.

A :class:`Family` pairs a distribution (its log-likelihood and variance
function) with a link ``eta = g(mu)``.  Everything the penalised IRLS loop and
the Laplace / quadrature objective need is here, computed from ``eta`` where
that is more accurate than from ``mu`` (the logs of probabilities near 0 or 1).

Prior weights follow scikit-learn's ``sample_weight``, which is also glmer's
``weights``:

- binomial: ``y`` is a proportion and ``w`` the number of trials (glmer's
  ``cbind(successes, failures)`` is ``y = successes / trials`` with
  ``w = trials``); for 0/1 rows a weight of 2 is the row twice;
- Poisson: ``y`` is a rate and ``w`` the exposure (scikit-learn's
  ``PoissonRegressor`` convention), so the row is a count ``w y`` of mean
  ``w mu``: the same fit, log-likelihood included, as glmer's count model
  with ``offset(log(w))``.
"""

from dataclasses import dataclass

import numpy as np
from scipy import special

EPS = np.finfo(float).eps
# Linear predictors beyond this are clipped: exp(700) is near the float limit
# and no data move a log-mean that far.
ETA_LIMIT = 700.0


@dataclass(frozen=True)
class Link:
    """A link ``eta = g(mu)`` and the pieces of its inverse the fit uses."""

    name: str

    def inverse(self, eta):
        """``mu = g^{-1}(eta)``."""
        if self.name == "logit":  # saturates without overflow: no clipping
            return special.expit(eta)
        if self.name == "probit":
            return special.ndtr(eta)
        eta = np.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        if self.name == "cloglog":
            return -np.expm1(-np.exp(eta))
        return np.exp(eta)  # log

    def derivative(self, eta):
        """``d mu / d eta``, bounded below by machine epsilon (as R's)."""
        eta = np.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        if self.name == "logit":
            e = np.exp(-np.abs(eta))
            d = e / (1.0 + e) ** 2
        elif self.name == "probit":
            d = np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi)
        elif self.name == "cloglog":
            d = np.exp(eta - np.exp(np.minimum(eta, ETA_LIMIT / 2)))
        else:
            d = np.exp(eta)
        return np.maximum(d, EPS)

    def second_derivative(self, eta, mu, derivative):
        """``d^2 mu / d eta^2``, from ``mu`` and ``d mu / d eta`` at ``eta``.

        Zero where the derivative is at its floor (the curve flat to
        rounding), consistently with :meth:`derivative`: the formula there
        would multiply the floor by a huge factor (cloglog's ``e^eta``).
        """
        if self.name == "log":
            return derivative
        if self.name == "logit":
            d2 = derivative * (1.0 - 2.0 * mu)
        elif self.name == "probit":
            d2 = -np.clip(eta, -ETA_LIMIT, ETA_LIMIT) * derivative
        else:  # cloglog
            d2 = derivative * (1.0 - np.exp(np.minimum(eta, ETA_LIMIT / 2)))
        return np.where(derivative > EPS, d2, 0.0)

    def __call__(self, mu):
        """``eta = g(mu)``, for starting values."""
        if self.name == "logit":
            return special.logit(mu)
        if self.name == "probit":
            return special.ndtri(mu)
        if self.name == "cloglog":
            return np.log(-np.log1p(-mu))
        return np.log(mu)


class Family:
    """A distribution with a link; subclasses give the distribution."""

    name = ""
    links = ()
    canonical_link = ""

    def __init__(self, link):
        if link not in self.links:
            raise ValueError(
                f"link must be one of {list(self.links)} for the {self.name} "
                f"family; got {link!r}."
            )
        self.link = Link(link)

    def working(self, y, eta, weights):
        """IRLS working response and weights at ``eta``.

        The weights are ``w (d mu / d eta)^2 / V(mu)``; the working response
        is ``eta + (y - mu) / (d mu / d eta)``.
        """
        mu = self.link.inverse(eta)
        if self.link.name == self.canonical_link:
            # d mu / d eta is the variance: the weights are w V(mu).
            d = self.variance(mu)
            np.maximum(d, EPS, out=d)
            z = y - mu
            z /= d
            z += eta
            return z, d if weights is None else weights * d
        d = self.link.derivative(eta)
        variance = np.maximum(self.variance(mu), EPS)
        return eta + (y - mu) / d, weights * d * d / variance

    def __repr__(self):
        return f"{type(self).__name__}(link={self.link.name!r})"


class Binomial(Family):
    """Proportions of ``w`` trials (0/1 rows: ``w = 1``)."""

    name = "binomial"
    links = ("logit", "probit", "cloglog")
    canonical_link = "logit"

    @staticmethod
    def variance(mu):
        return mu * (1.0 - mu)

    @staticmethod
    def variance_derivative(mu):
        return 1.0 - 2.0 * mu

    def log_probabilities(self, eta):
        """``log mu`` and ``log(1 - mu)``, accurate in both tails."""
        eta = np.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        if self.link.name == "logit":
            return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
        if self.link.name == "probit":
            return special.log_ndtr(eta), special.log_ndtr(-eta)
        exp_eta = np.exp(np.minimum(eta, ETA_LIMIT / 2))  # cloglog
        return np.log(-np.expm1(-np.maximum(exp_eta, 1e-300))), -exp_eta

    def loglik(self, y, eta, weights):
        """Per-row log-likelihood, R's ``dbinom(w y, w, mu, log = TRUE)``.

        Without the binomial coefficient: see :meth:`log_constant`.
        """
        successes = weights * y
        if self.link.name == "logit":  # w y eta - w log(1 + e^eta), stably
            softplus = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
            return successes * eta - weights * softplus
        log_mu, log_1mu = self.log_probabilities(eta)
        failures = weights - successes
        # 0 * log(0) is 0: a certain outcome costs nothing.
        value = np.where(successes > 0, successes * log_mu, 0.0)
        return value + np.where(failures > 0, failures * log_1mu, 0.0)

    @staticmethod
    def log_constant(y, weights):
        """The log-likelihood's part free of ``mu``: log binomial coefficients."""
        return float(log_binomial_coefficient(weights, weights * y).sum())

    @staticmethod
    def start(y, weights):
        """glmer's starting means: ``(w y + 0.5) / (w + 1)``."""
        return (weights * y + 0.5) / (weights + 1.0)


class Poisson(Family):
    """Counts (or rates ``y`` of exposure ``w``)."""

    name = "poisson"
    links = ("log",)
    canonical_link = "log"

    @staticmethod
    def variance(mu):
        return mu

    @staticmethod
    def variance_derivative(mu):
        return np.ones_like(mu)

    def loglik(self, y, eta, weights):
        """Per-row log-likelihood of the count ``w y`` with mean ``w mu``.

        Without the part free of ``mu``: see :meth:`log_constant`.
        """
        eta = np.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        return weights * (y * eta - np.exp(eta))

    @staticmethod
    def log_constant(y, weights):
        """``sum(w y log w - log((w y)!))``: the part free of ``mu``."""
        counts = weights * y
        log_weights = np.log(np.where(weights > 0, weights, 1.0))
        return float((counts * log_weights - special.gammaln(counts + 1.0)).sum())

    @staticmethod
    def start(y, weights):
        return y + 0.1


def log_binomial_coefficient(n, k):
    """``log(n choose k)`` for real ``n >= k >= 0`` (0 when k is 0 or n)."""
    return (
        special.gammaln(n + 1.0)
        - special.gammaln(k + 1.0)
        - special.gammaln(n - k + 1.0)
    )


def make_family(name, link):
    """The :class:`Family` of a name (``"binomial"``, ``"poisson"``) and link."""
    families = {"binomial": Binomial, "poisson": Poisson}
    return families[name](link)
