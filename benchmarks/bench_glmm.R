# lme4 side of benchmarks/bench_glmm.py.
#
# Usage: Rscript benchmarks/bench_glmm.R DATA_DIR
#
# Loads lme4 and the CSVs bundled with hierlm (factor columns as factors, numeric
# looking labels in numeric order, as hierlm.datasets.load does), does one warm-up
# glmer fit, prints "READY ...", then serves requests from stdin so that the Python
# driver can interleave lme4 with hierlm repetition by repetition:
#
#   stdin line "fit CASE"   -> stdout line "RESULT CASE SECONDS LOGLIK"
#   stdin line "quit" / EOF -> exit
#
# Only the glmer() call is timed (wall clock, after an untimed gc()); data loading
# happens once, before "READY" is printed.  glmer runs with its defaults
# (glmerControl(): bobyqa then Nelder_Mead, Hessian for vcov).

suppressMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "hierlm/datasets/data"

as_factor <- function(x) {
  x <- as.character(x)
  num <- suppressWarnings(as.numeric(x))
  lev <- if (!anyNA(num[!is.na(x)])) unique(x[order(num)]) else sort(unique(x))
  factor(x, levels = lev[!is.na(lev)])
}

read_case <- function(file, factors) {
  d <- read.csv(file.path(data_dir, file), colClasses = setNames(rep("character", length(factors)), factors))
  for (f in factors) d[[f]] <- as_factor(d[[f]])
  d
}

cases <- list(
  cbpp = list(data = read_case("cbpp.csv", c("herd", "period")), family = binomial,
              formula = cbind(incidence, size - incidence) ~ period + (1 | herd)),
  grouseticks = list(data = read_case("grouseticks.csv", c("INDEX", "BROOD", "YEAR", "LOCATION")),
                     family = poisson,
                     formula = TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION))
)

fit_case <- function(name) {
  cs <- cases[[name]]
  gc()
  t0 <- Sys.time()
  fit <- glmer(cs$formula, data = cs$data, family = cs$family)
  el <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  c(el, as.numeric(logLik(fit)))
}

invisible(fit_case("cbpp"))
cat(sprintf("READY lme4 %s R %s\n", as.character(packageVersion("lme4")), getRversion()))
flush(stdout())

con <- file("stdin", open = "r")
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0) break
  parts <- strsplit(trimws(line), "[[:space:]]+")[[1]]
  if (length(parts) == 0) next
  if (parts[1] == "quit") break
  if (parts[1] == "fit" && length(parts) == 2 && parts[2] %in% names(cases)) {
    r <- tryCatch(fit_case(parts[2]), error = function(e) {
      cat(sprintf("ERROR %s %s\n", parts[2], gsub("\n", " ", conditionMessage(e))))
      NULL
    })
    if (!is.null(r)) cat(sprintf("RESULT %s %.6f %.10f\n", parts[2], r[1], r[2]))
  } else {
    cat(sprintf("ERROR unknown request: %s\n", line))
  }
  flush(stdout())
}
close(con)
