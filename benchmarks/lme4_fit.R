# Worker for bench_single_factor.py: fit y ~ x1 + x2 + (1 + x1 | g) with lme4.
#
# Usage: Rscript lme4_fit.R DATA_DIR N_ROWS WARMUP_GROUPS MODE
#   DATA_DIR       folder with x1.f64, x2.f64, y.f64 (little-endian doubles) and
#                  g.i32 (little-endian 32-bit integers), N_ROWS values each
#   WARMUP_GROUPS  a REML fit on the rows with g < WARMUP_GROUPS runs first, so
#                  the timed fit finds lme4, Matrix and the byte-compiler warm
#   MODE           "fit" times lme4::lmer on all rows; "baseline" stops before it
#
# Prints one line "RESULT {json}" on stdout. Only the lmer call is timed
# (system.time, elapsed); reading the data and building the factor are not.
# Plain lme4::lmer is used, not lmerTest's wrapper, which does extra work after
# the fit for Satterthwaite degrees of freedom.

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
data_dir <- args[[1]]
n <- as.integer(args[[2]])
warmup_groups <- as.integer(args[[3]])
mode <- args[[4]]

read_column <- function(name, what, size) {
  path <- file.path(data_dir, name)
  con <- file(path, "rb")
  on.exit(close(con))
  readBin(con, what = what, n = n, size = size, endian = "little")
}

d <- data.frame(
  y = read_column("y.f64", "double", 8L),
  x1 = read_column("x1.f64", "double", 8L),
  x2 = read_column("x2.f64", "double", 8L),
  g_code = read_column("g.i32", "integer", 4L)
)
d$g <- factor(d$g_code)
model <- y ~ x1 + x2 + (1 + x1 | g)

warm <- droplevels(d[d$g_code < warmup_groups, ])
invisible(suppressMessages(lme4::lmer(model, data = warm, REML = TRUE)))

num <- function(x) sprintf("%.17g", x)
num_list <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")

if (mode == "baseline") {
  cat("RESULT {\"seconds\": null}\n")
} else {
  elapsed <- system.time(
    fit <- lme4::lmer(model, data = d, REML = TRUE)
  )[["elapsed"]]
  vc <- VarCorr(fit)$g
  messages <- fit@optinfo$conv$lme4$messages
  cat(
    "RESULT {",
    "\"seconds\": ", num(elapsed), ", ",
    "\"fixef\": ", num_list(unname(fixef(fit))), ", ",
    "\"sd\": ", num_list(unname(attr(vc, "stddev"))), ", ",
    "\"corr\": ", num(attr(vc, "correlation")[2, 1]), ", ",
    "\"sigma\": ", num(sigma(fit)), ", ",
    "\"objective\": ", num(REMLcrit(fit)), ", ",
    "\"converged\": ", if (length(messages) == 0) "true" else "false",
    "}\n",
    sep = ""
  )
}
