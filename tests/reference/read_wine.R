# ordinal::wine as tests/reference/ordinal.R writes it (tests/reference/wine.csv), read back
# with R's factor levels: rating an ordered factor 1 < ... < 5.  Sourced by the scripts that
# fit models to it (ordinal_agq.R, ordinal_performance.R).
read_wine <- function(here = "tests/reference") {
  w <- read.csv(file.path(here, "wine.csv"), colClasses = "character")
  w$rating <- factor(w$rating, levels = as.character(1:5), ordered = TRUE)
  w$temp <- factor(w$temp, levels = c("cold", "warm"))
  w$contact <- factor(w$contact, levels = c("no", "yes"))
  w$judge <- factor(w$judge, levels = as.character(1:9))
  w
}
