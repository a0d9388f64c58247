# lme4 side of benchmarks/bench_lmm.py.
#
# Usage: Rscript benchmarks/bench_lme4.R DATA_DIR
#
# Loads lme4 and the CSVs bundled with hierlm (factor columns as factors, numeric
# looking labels in numeric order, as hierlm.datasets.load does), does one warm-up
# sleepstudy fit, prints "READY ...", then serves requests from stdin so that the
# Python driver can interleave lme4 with the Python tools repetition by repetition:
#
#   stdin line "fit CASE"  -> stdout line "RESULT CASE SECONDS REMLCRIT"
#   stdin line "mem"       -> stdout line "MEM VmHWM_KiB"   (peak RSS of this R process)
#   stdin line "quit" / EOF -> exit
#
# Only the lmer() call is timed (wall clock, Sys.time() before and after, after a
# gc() that is not timed); data loading happens once, before "READY" is printed.

suppressMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "hierlm/datasets/data"

as_factor <- function(x) {
  x <- as.character(x)
  num <- suppressWarnings(as.numeric(x))
  if (!anyNA(num[!is.na(x)])) {
    lev <- unique(x[order(num)])
  } else {
    lev <- sort(unique(x))
  }
  factor(x, levels = lev[!is.na(lev)])
}

read_case <- function(file, factors) {
  d <- read.csv(file.path(data_dir, file), colClasses = setNames(rep("character", length(factors)), factors))
  for (f in factors) d[[f]] <- as_factor(d[[f]])
  d
}

cases <- list(
  sleepstudy = list(data = read_case("sleepstudy.csv", "Subject"),
                    formula = Reaction ~ Days + (Days | Subject)),
  Penicillin = list(data = read_case("Penicillin.csv", c("plate", "sample")),
                    formula = diameter ~ 1 + (1 | plate) + (1 | sample)),
  InstEval   = list(data = read_case("InstEval.csv.gz", c("s", "d", "studage", "lectage", "service", "dept")),
                    formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service))
)

vmhwm <- function() {
  st <- tryCatch(readLines("/proc/self/status"), error = function(e) character(0))
  line <- grep("^VmHWM:", st, value = TRUE)
  if (length(line) == 0) return(NA_real_)
  as.numeric(gsub("[^0-9]", "", line))
}

fit_case <- function(name) {
  cs <- cases[[name]]
  gc()
  fit <- NULL
  t0 <- Sys.time()
  fit <- lmer(cs$formula, data = cs$data, REML = TRUE)
  el <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  c(el, REMLcrit(fit))
}

# Load the whole lme4 code path once (sleepstudy is cheap); per-case warm-ups are
# requested by the driver.
invisible(fit_case("sleepstudy"))
cat(sprintf("READY lme4 %s R %s\n", as.character(packageVersion("lme4")), getRversion()))
flush(stdout())

con <- file("stdin", open = "r")
repeat {
  line <- readLines(con, n = 1)
  if (length(line) == 0) break
  parts <- strsplit(trimws(line), "[[:space:]]+")[[1]]
  if (length(parts) == 0) next
  if (parts[1] == "quit") break
  if (parts[1] == "mem") {
    cat(sprintf("MEM %.0f\n", vmhwm()))
  } else if (parts[1] == "fit" && length(parts) == 2 && parts[2] %in% names(cases)) {
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
