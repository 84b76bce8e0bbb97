# lme4 reference analyses for tests/test_analyses.py: six classic data sets fitted
# from a model formula, as a user of MixedLinearRegressor(formula=...) would.
#
#   cd tests/data/analyses && Rscript make_analyses.R
#   (apt-get install r-base-core r-cran-lme4 r-cran-nlme r-cran-jsonlite)
#
# For each data set it writes <data>.csv (R's values as they are: factors as their
# labels) and <data>_newdata.csv (held-out rows for predict(): seen and unseen levels
# of every grouping factor, covariates inside and outside the training range); for
# each model it writes <name>.json: the formula, every column's R type and levels
# (training and new rows), and per method (REML, ML) lme4's criterion, fixed effects
# and SEs, sigma, VarCorr SDs and correlations per grouping factor, theta,
# isSingular, the convergence messages, and predictions on the new rows:
# predict(m, newdata, allow.new.levels = TRUE), re.form = NA and a partial re.form.
suppressMessages({library(lme4); library(nlme); library(jsonlite)})

column_spec <- function(x) {
  if (is.ordered(x)) list(type = "ordered", levels = levels(x))
  else if (is.factor(x)) list(type = "factor", levels = levels(x))
  else if (is.logical(x)) list(type = "logical")
  else if (is.character(x)) list(type = "character")
  else if (is.integer(x)) list(type = "integer")
  else list(type = "numeric")
}

# new rows: a factor column keeps the training levels (in R's order, same
# orderedness) followed by the new levels in order of appearance
new_rows <- function(train, rows) {
  for (v in names(rows)) if (is.factor(train[[v]])) {
    labels <- as.character(rows[[v]])
    extra <- setdiff(unique(labels[!is.na(labels)]), levels(train[[v]]))
    rows[[v]] <- factor(labels, levels = c(levels(train[[v]]), extra),
                        ordered = is.ordered(train[[v]]))
  }
  rows
}

# lmer, keeping every warning and message it gives; start and control for the
# polished refit
fit_lmer <- function(formula, data, reml, start = NULL, control = lmerControl()) {
  caught <- character(0)
  m <- withCallingHandlers(
    lmer(as.formula(formula), data = data, REML = reml, start = start, control = control),
    warning = function(w) { caught <<- c(caught, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { caught <<- c(caught, conditionMessage(w)); invokeRestart("muffleMessage") })
  list(model = m, caught = caught)
}

# lme4's default fit stops where its optimiser's tolerances say (criterion changes
# of ~1e-8 can leave the SDs ~1e-3 from the optimum on a flat criterion); the
# polished refit starts there and runs BOBYQA to much tighter tolerances
POLISH <- lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, xtol_rel = 1e-13,
                                     ftol_rel = 1e-15, maxeval = 1e5))

na_null <- function(x) { x <- unname(as.numeric(x)); as.list(ifelse(is.na(x), NA, x)) }

fit_json <- function(fit, newdata, partial) {
  m <- fit$model
  fe <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m))))
  vc <- VarCorr(m)
  random <- lapply(names(vc), function(g) {
    v <- vc[[g]]
    list(group = g, terms = I(colnames(v)), sd = I(unname(attr(v, "stddev"))),
         corr = unname(attr(v, "correlation")))
  })
  conv <- m@optinfo$conv
  messages <- unique(trimws(c(conv$lme4$messages, unlist(m@optinfo$warnings), fit$caught)))
  list(
    optimizer = m@optinfo$optimizer,
    control = m@optinfo$control,
    criterion = unname(if (isREML(m)) getME(m, "devcomp")$cmp[["REML"]] else deviance(m)),
    fixef = list(names = I(names(fe)), estimate = I(unname(fe)), se = I(unname(se))),
    sigma = sigma(m),
    random = random,
    theta = I(unname(getME(m, "theta"))),
    theta_names = I(names(getME(m, "theta"))),
    is_singular = isSingular(m),
    optimizer_code = conv$opt,
    messages = I(as.character(messages)),
    converged_cleanly = length(messages) == 0 && conv$opt == 0,
    predictions = list(
      conditional = na_null(predict(m, newdata, allow.new.levels = TRUE)),
      population = na_null(predict(m, newdata, re.form = NA)),
      partial = na_null(predict(m, newdata, re.form = as.formula(partial),
                                allow.new.levels = TRUE))
    )
  )
}

analysis <- function(name, data_name, data, newdata, formula, partial, note = "") {
  newdata <- new_rows(data, newdata)
  write.csv(data, if (nrow(data) > 10000) gzfile(paste0(data_name, ".csv.gz")) else paste0(data_name, ".csv"),
            row.names = FALSE)
  write.csv(newdata, paste0(data_name, "_newdata.csv"), row.names = FALSE)
  fits <- list(REML = fit_lmer(formula, data, TRUE), ML = fit_lmer(formula, data, FALSE))
  polished <- lapply(fits, function(f) fit_lmer(formula, data, isREML(f$model),
    start = getME(f$model, "theta"), control = POLISH))
  # the fixed-effects model matrix of the new rows, as predict() builds it
  m <- fits$REML$model
  tt <- delete.response(terms(m, fixed.only = TRUE))
  mf <- model.frame(tt, newdata, na.action = na.pass, xlev = .getXlevels(tt, model.frame(m)))
  X_new <- model.matrix(tt, mf, contrasts.arg = attr(getME(m, "X"), "contrasts"))
  stopifnot(identical(colnames(X_new), names(fixef(m))),
            isTRUE(all.equal(unname(drop(X_new %*% fixef(m))),
                             unname(predict(m, newdata, re.form = NA)))))
  partial_factors <- vapply(findbars(as.formula(partial)), function(b) deparse(b[[3]]), "")
  out <- list(
    name = name, data = data_name, n = nrow(data), formula = formula,
    response = all.vars(as.formula(formula))[1],
    note = note,
    columns = lapply(data, column_spec),
    newdata_columns = lapply(newdata, column_spec),
    n_new = nrow(newdata),
    grouping_factors = I(names(fits$REML$model@flist)),
    partial_re_form = partial,
    partial_factors = I(partial_factors),
    lme4_version = as.character(packageVersion("lme4")),
    r_version = R.version.string,
    new_fixed_matrix = unname(X_new),
    fits = lapply(names(fits), function(k) list(
      lme4 = fit_json(fits[[k]], newdata, partial),
      polished = fit_json(polished[[k]], newdata, partial)))
  )
  names(out$fits) <- names(fits)
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
             paste0(name, ".json"))
  for (method in names(fits)) for (k in c("lme4", "polished")) {
    f <- out$fits[[method]][[k]]
    cat(sprintf("%-18s %-4s %-8s n=%d criterion=%.8f singular=%s messages: %s\n", name, method, k,
                nrow(data), f$criterion, f$is_singular,
                if (length(f$messages)) paste(f$messages, collapse = " | ") else "none"))
  }
}

# 1. lme4's cake: temperature is an ordered factor (poly contrasts .L .Q .C ^4 ^5)
cake <- lme4::cake[, c("angle", "recipe", "temperature", "replicate")]
analysis("cake", "cake", cake,
  data.frame(recipe = c("A", "A", "B", "C", "C", "A", "B", "C", "B", "A"),
             replicate = c("1", "1", "7", "15", "15", "16", "16", "20", "3", "12"),
             temperature = c("175", "225", "195", "215", "185", "205", "175", "225", "225", "185")),
  "angle ~ recipe * temperature + (1 | recipe:replicate)", "~(1 | recipe:replicate)",
  note = "one grouping factor: the partial re.form is the full one")

# 2. nlme's Oats: Block is an ordered factor in nlme (VI < V < III < IV < II < I)
oats <- as.data.frame(nlme::Oats)[, c("yield", "nitro", "Variety", "Block")]
class(oats) <- "data.frame"
analysis("oats", "oats", oats,
  data.frame(Block = c("I", "I", "III", "VI", "II", "VII", "VII", "V", "IV", "VIII"),
             Variety = c("Victory", "Victory", "Marvellous", "Golden Rain", "Golden Rain",
                         "Victory", "Marvellous", "Marvellous", "Victory", "Golden Rain"),
             nitro = c(0, 0.3, 0.6, 0.8, 1.0, 0.2, 0.9, -0.1, NA, 0.4)),
  "yield ~ nitro * Variety + (1 | Block/Variety)", "~(1 | Block)",
  note = "new row 9 has a missing nitro: every prediction is NA (NaN)")

# 3. nlme's Orthodont: Subject is an ordered factor in nlme
orthodont <- as.data.frame(nlme::Orthodont)[, c("distance", "age", "Subject", "Sex")]
class(orthodont) <- "data.frame"
analysis("orthodont", "orthodont", orthodont,
  data.frame(Subject = c("M01", "M01", "F05", "F11", "M16", "M20", "F20", "F21", "M05", "M99"),
             Sex = c("Male", "Male", "Female", "Female", "Male", "Male", "Female", "Female", "Male", "Male"),
             age = c(8, 11, 14, 16, 6, 10, 12, 18, 20, 8)),
  "distance ~ age * Sex + (age | Subject)", "~(age | Subject)",
  note = "one grouping factor: the partial re.form is the full one")

# 4. ChickWeight: Chick made unordered (R's level order kept), Diet a factor
chick <- as.data.frame(ChickWeight)[, c("weight", "Time", "Chick", "Diet")]
class(chick) <- "data.frame"
chick$Chick <- factor(chick$Chick, ordered = FALSE)
chick_new <- data.frame(
  Chick = c("1", "1", "1", "18", "25", "35", "45", "51", "52", "60", "50", "21"),
  Diet = c("1", "1", "1", "1", "2", "3", "4", "1", "3", "4", "4", "2"),
  Time = c(0, 21, 25, 10, 7, 21, 30, 12, 24, 0, 14, 5))
analysis("chickweight_poly", "chickweight", chick, chick_new,
  "weight ~ poly(Time, 2) * Diet + (poly(Time, 2) | Chick)", "~(poly(Time, 2) | Chick)",
  note = "one grouping factor: the partial re.form is the full one; Chick made unordered")
analysis("chickweight_linear", "chickweight", chick, chick_new,
  "weight ~ Time * Diet + (1 + Time | Chick)", "~(1 + Time | Chick)",
  note = "one grouping factor: the partial re.form is the full one; Chick made unordered")

# 5. nlme's Machines: Worker is an ordered factor in nlme
machines <- as.data.frame(nlme::Machines)[, c("score", "Machine", "Worker")]
class(machines) <- "data.frame"
analysis("machines", "machines", machines,
  data.frame(Worker = c("1", "1", "3", "6", "6", "5", "7", "7", "8", "2"),
             Machine = c("A", "B", "C", "A", "C", "B", "A", "C", "B", "C")),
  "score ~ Machine + (1 | Worker/Machine)", "~(1 | Worker)")

# 6. lme4's InstEval (73,421 rows; the whole data set, gzip CSV)
inst <- lme4::InstEval[, c("y", "service", "s", "d", "dept")]
seen <- inst[c(1, 100, 5000, 30000, 73421), c("service", "s", "d", "dept")]
inst_new <- rbind(
  data.frame(lapply(seen, as.character)),
  data.frame(service = c("0", "1", "1", "0", "1", "0", "1"),
             s = c("1", "99999", "99999", "2972", "500", "1", "99998"),
             d = c("99999", "1", "99999", "1", "1002", "6", "99998"),
             dept = c("15", "5", "99", "99", "10", "1", "12")))
analysis("insteval", "insteval", inst, inst_new,
  "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", "~(1 | s)",
  note = "the whole data set (gzip CSV); dept 99 is a new level of dept (so of dept:service)")
