# The datasets hierlm bundles (hierlm/datasets/data), read back with R's factors, so that R and
# hierlm fit the same numbers.  Sourced by student_tmb.R and gamma_performance.R.
read_bundled <- function(name, data_dir = "hierlm/datasets/data") {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")))
  factors <- list(sleepstudy = "Subject", ChickWeight = c("Chick", "Diet"))[[name]]
  for (col in factors) d[[col]] <- factor(d[[col]])
  d
}
