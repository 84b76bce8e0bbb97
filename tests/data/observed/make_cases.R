# Regenerates the observed hard cases in this folder: data where skmixed was
# reported (GitHub issue) to stop at a worse optimum than lme4 1.1-31, or to
# disagree with it on the boundary, the identifiability checks or warnings.
#   apt-get install r-base-core r-cran-lme4 r-cran-nlme r-cran-jsonlite
#   cd tests/data/observed && Rscript make_cases.R [outdir] [reps]
# Writes <data>.csv (response, grouping columns, fixed-effect model-matrix
# columns with Python-friendly names) and <case>.json per case: the model, the
# skmixed call, and per method (REML, ML) lme4's numbers at its default
# settings, its convergence messages and warnings, its fit time (median of
# `reps` system.time repetitions, default 5), and a "polished" refit from its
# own optimum with tight tolerances (lme4 again, to tell lme4's stopping error
# from a different optimum).  The synthetic cases are simulated here with
# set.seed(seed) for seeds 1, 2, 3.
suppressMessages({library(lme4); library(nlme); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "."
reps <- if (length(args) >= 2) as.integer(args[2]) else 5L
SEEDS <- 1:3

# Model-matrix names to Python-friendly ones: (Intercept) -> Intercept,
# I(Time^2) -> Time2, Time:Diet2 -> Time_Diet2.
clean <- function(s) {
  s <- gsub("^\\(Intercept\\)$", "Intercept", s)
  s <- gsub("I\\(([A-Za-z0-9_.]+)\\^([0-9]+)\\)", "\\1\\2", s)
  gsub("[^A-Za-z0-9_]", "", gsub(":", "_", s))
}

# Fit while collecting warnings and messages (lme4 sends "boundary (singular)
# fit" as a message) instead of printing them.
quiet_fit <- function(expr) {
  notes <- character(0)
  fit <- withCallingHandlers(expr,
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(fit = fit, notes = unique(notes))
}

varcorr_json <- function(m) {
  vc <- VarCorr(m); cnms <- getME(m, "cnms")
  th <- getME(m, "theta"); k <- 0
  groups <- gsub(":", "", sub("\\.[0-9]+$", "", names(cnms)))  # g.1: (1 + x || g); a:b: ab
  out <- list()
  for (i in seq_along(cnms)) {
    q <- length(cnms[[i]]); nt <- q * (q + 1) / 2
    g <- groups[i]; s <- vc[[i]]  # VarCorr names g, g.1 where cnms has g, g
    sd <- unname(attr(s, "stddev")); cr <- attr(s, "correlation")
    if (is.null(out[[g]])) out[[g]] <- list(group = g, terms = character(0), sd = numeric(0), theta = numeric(0),
                                            corr = NULL)
    out[[g]]$terms <- c(out[[g]]$terms, clean(cnms[[i]]))
    out[[g]]$sd <- c(out[[g]]$sd, sd)
    out[[g]]$theta <- c(out[[g]]$theta, unname(th[k + seq_len(nt)]))
    out[[g]]$corr <- if (q > 1) unname(cr) else out[[g]]$corr
    k <- k + nt
  }
  lapply(unname(out), function(r) {
    q <- length(r$terms)
    if (is.null(r$corr)) r$corr <- diag(q)  # one term, or (1 + x || g)
    list(group = r$group, terms = I(r$terms), sd = I(r$sd), corr = unname(r$corr), theta = I(r$theta))
  })
}

estimates_json <- function(m) {
  fe <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m))))
  list(
    criterion = unname(if (isREML(m)) REMLcrit(m) else deviance(m)),
    fixef = as.list(setNames(unname(fe), clean(names(fe)))),
    fixef_se = as.list(setNames(unname(se), clean(names(fe)))),
    sigma = sigma(m),
    random = varcorr_json(m),
    theta = I(unname(getME(m, "theta"))),
    is_singular = isSingular(m)
  )
}

fit_method <- function(formula, data, reml) {
  f <- quiet_fit(lmer(formula, data, REML = reml))
  m <- f$fit
  times <- vapply(seq_len(reps), function(i)
    unname(system.time(suppressWarnings(suppressMessages(lmer(formula, data, REML = reml))))["elapsed"]), 0)
  out <- estimates_json(m)
  out$messages <- I(as.character(unlist(m@optinfo$conv$lme4$messages)))
  out$warnings <- I(f$notes)
  out$optimizer <- list(name = m@optinfo$optimizer, feval = m@optinfo$feval,
                        code = m@optinfo$conv$opt)
  out$time_s <- median(times)
  out$time_reps <- I(times)
  # lme4 again, from its own optimum with tight tolerances.
  ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 1e-3, rhoend = 1e-12, maxfun = 1e5),
                      calc.derivs = FALSE)
  p <- quiet_fit(lmer(formula, data, REML = reml, control = ctrl, start = list(theta = getME(m, "theta"))))$fit
  out$polished <- if (out$criterion - estimates_json(p)$criterion > -1e-9) estimates_json(p) else estimates_json(m)
  out
}

write_case <- function(name, data_name, data, formula, groups, note, seed = NULL, truth = NULL,
                       identified = TRUE) {
  mm <- model.matrix(nobars(formula), data)
  fixed <- setdiff(colnames(mm), "(Intercept)")
  response <- all.vars(formula)[1]
  frame <- data[, c(response, groups), drop = FALSE]
  for (cn in fixed) frame[[clean(cn)]] <- unname(mm[, cn])
  # The random-effect terms per grouping factor, from lme4's own parse.
  # The random-effect terms per grouping factor, from lme4's own parse, which
  # splits (1 + x || g) into (1 | g) + (0 + x | g).
  diagonal <- grepl("||", paste(deparse(formula), collapse = ""), fixed = TRUE)
  slopes <- list(); covariance <- list(); intercept <- list()
  for (b in findbars(formula)) {
    g <- gsub(":", "", deparse(b[[3]]))  # a:b is the column ab
    rm <- model.matrix(as.formula(paste("~", deparse(b[[2]]))), data)
    intercept[[g]] <- isTRUE(intercept[[g]]) || "(Intercept)" %in% colnames(rm)
    slopes[[g]] <- I(c(slopes[[g]], clean(setdiff(colnames(rm), "(Intercept)"))))
    covariance[[g]] <- if (diagonal) "diagonal" else "unstructured"
  }
  stopifnot(length(unique(unlist(intercept))) == 1, setequal(names(slopes), groups))
  intercept <- unlist(intercept)
  fits <- list(REML = fit_method(formula, data, TRUE), ML = fit_method(formula, data, FALSE))
  spec <- list(
    name = name, note = note, formula = paste(deparse(formula), collapse = ""),
    lme4_version = as.character(packageVersion("lme4")), r_version = R.version.string,
    seed = seed, truth = truth, identified = identified, data = paste0(data_name, ".csv"), nobs = nrow(data),
    response = response, fixed_columns = I(clean(fixed)), groups = I(groups),
    random_slopes = slopes, covariance = covariance, random_intercept = unname(intercept[1]),
    fits = fits)
  writeLines(toJSON(spec, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
             file.path(outdir, paste0(name, ".json")))
  frame
}

write_data <- function(frame, data_name) {
  write.csv(frame, file.path(outdir, paste0(data_name, ".csv")), row.names = FALSE)
}

# Group labels: every level at least `min` rows, the rest spread at random.
labels <- function(n_levels, n, min = 1) sort(c(rep(seq_len(n_levels), min), sample(n_levels, n - min * n_levels, TRUE)))

# Correlated normal random effects with SDs `sd` and correlation `rho`.
draw_effects <- function(m, sd, rho) {
  q <- length(sd); R <- matrix(rho, q, q); diag(R) <- 1
  matrix(rnorm(m * q), m, q) %*% chol(diag(sd, q) %*% R %*% diag(sd, q))
}

simulated <- function(name, seed, formula, groups, note, truth, make) {
  set.seed(seed)
  d <- make()
  data_name <- paste0(name, "_s", seed)
  write_data(write_case(data_name, data_name, d, formula, groups, note, seed, truth), data_name)
  cat("wrote", data_name, "\n")
}

for (seed in SEEDS) {
  simulated("dummy_slope", seed, y ~ x1 + (1 + x1 | g), "g",
    "0/1 dummy slope varying within groups (p = 0.28), 56 unbalanced groups, n = 702",
    list(intercept = 0.5, slope = 0.3, sd = c(0.57, 0.6), corr = -0.3, sigma = 1),
    function() {
      g <- labels(56, 702, min = 4)
      b <- draw_effects(56, c(0.57, 0.6), -0.3)
      x1 <- rbinom(702, 1, 0.28)
      y <- 0.5 + b[g, 1] + (0.3 + b[g, 2]) * x1 + rnorm(702)
      data.frame(y = round(y, 6), g = sprintf("g%02d", g), x1 = x1)
    })
  simulated("nested_slope", seed, y ~ x1 + (1 + x1 | a) + (1 | a:b), c("a", "ab"),
    "correlated slope on a plus nested intercept a:b: 15 a, 56 a:b, n = 329",
    list(intercept = 1, slope = 0.5, sd_a = c(0.57, 0.6), corr_a = 0.3, sd_ab = 0.4, sigma = 1),
    function() {
      per_a <- c(rep(4, 11), rep(3, 4))  # 56 a:b levels in 15 a levels
      ab_a <- rep(seq_along(per_a), per_a)
      ab <- labels(56, 329, min = 2)
      a <- ab_a[ab]
      b_a <- draw_effects(15, c(0.57, 0.6), 0.3); b_ab <- rnorm(56, 0, 0.4)
      x1 <- rnorm(329)
      y <- 1 + b_a[a, 1] + b_ab[ab] + (0.5 + b_a[a, 2]) * x1 + rnorm(329)
      b_in_a <- ave(ab, a, FUN = function(v) match(v, unique(v)))
      data.frame(y = round(y, 6), a = sprintf("a%02d", a), ab = sprintf("a%02d:b%d", a, b_in_a),
                 b = b_in_a, x1 = round(x1, 6))
    })
  simulated("large_scale_slope", seed, y ~ x1 + (1 + x1 | g), "g",
    "slope on x1 ~ N(5e4, 1e4^2): intercept and slope on very different scales, 26 groups, n = 286",
    list(intercept = 2, slope = 2e-5, sd = c(0.57, 6e-5), corr = 0, sigma = 1, note = "intercept SD at x1 = 0"),
    function() {
      g <- labels(26, 286, min = 4)
      b <- draw_effects(26, c(0.57, 6e-5), 0)
      x1 <- round(rnorm(286, 5e4, 1e4), 2)
      y <- 2 + b[g, 1] + (2e-5 + b[g, 2]) * x1 + rnorm(286)
      data.frame(y = round(y, 6), g = sprintf("g%02d", g), x1 = x1)
    })
  simulated("four_slopes", seed, y ~ x1 + x2 + x3 + (1 + x1 + x2 + x3 | g), "g",
    "4 x 4 unstructured covariance, 36 groups, n = 443",
    list(beta = c(1, 0.5, -0.3, 0.2), sd = c(0.57, 0.6, 0.3, 0.15), corr = 0.2, sigma = 1),
    function() {
      g <- labels(36, 443, min = 6)
      b <- draw_effects(36, c(0.57, 0.6, 0.3, 0.15), 0.2)
      X <- matrix(rnorm(443 * 3), 443, 3)
      y <- 1 + b[g, 1] + rowSums(sweep(b[g, 2:4], 2, c(0.5, -0.3, 0.2), "+") * X) + rnorm(443)
      data.frame(y = round(y, 6), g = sprintf("g%02d", g), x1 = round(X[, 1], 6),
                 x2 = round(X[, 2], 6), x3 = round(X[, 3], 6))
    })
  simulated("pairs_diagonal", seed, y ~ x1 + (1 + x1 || g), "g",
    "593 groups of exactly 2 rows, uncorrelated slope: 1186 random effects for 1186 rows, 593 per term",
    list(intercept = 0, slope = 0.5, sd = c(0.57, 0.6), sigma = 1),
    function() {
      g <- rep(1:593, each = 2)
      b <- draw_effects(593, c(0.57, 0.6), 0)
      x1 <- rnorm(1186)
      y <- b[g, 1] + (0.5 + b[g, 2]) * x1 + rnorm(1186)
      data.frame(y = round(y, 6), g = sprintf("g%03d", g), x1 = round(x1, 6))
    })
}

chick <- as.data.frame(datasets::ChickWeight)
chick$Chick <- as.character(chick$Chick)
f1 <- write_case("chickweight_quadratic", "chickweight", chick,
  weight ~ Time + I(Time^2) + (Time + I(Time^2) | Chick), "Chick",
  "R's ChickWeight: quadratic growth curves with a 3 x 3 unstructured covariance")
f2 <- write_case("chickweight_diet", "chickweight", chick,
  weight ~ Time * Diet + I(Time^2) + (Time + I(Time^2) | Chick), "Chick",
  "R's ChickWeight: as chickweight_quadratic with Time * Diet in the fixed part")
write_data(cbind(f2, f1[setdiff(names(f1), names(f2))]), "chickweight")
cat("wrote chickweight\n")

data(Orthodont, package = "nlme")
ortho <- as.data.frame(Orthodont)
ortho$Subject <- as.character(ortho$Subject)
ortho$Sex <- factor(as.character(ortho$Sex), levels = c("Male", "Female"))
write_data(write_case("orthodont_sex", "orthodont", ortho, distance ~ age * Sex + (Sex | Subject), "Subject",
  "nlme's Orthodont: random Sex effect with Sex constant within Subject (3 covariance parameters, 2 identifiable); lme4 reports a degenerate Hessian",
  identified = FALSE), "orthodont")
cat("wrote orthodont\n")
