# emmeans with a cell the data lack (diet 4 never weighed before day 10): the values that
# tests/test_emmeans.py::test_cells_the_data_lack_are_not_estimable checks, as R prints them.
# Run from the repository root: Rscript tests/reference/emmeans_nonest.R
# Output (R 4.2.2, lme4 1.1-31, emmeans 1.8.4-1):
#  Diet emmean   SE   df lower.CL upper.CL
#  1      96.8 6.03 44.8     84.7      109
#  2     114.2 8.38 42.9     97.3      131
#  3     131.9 8.38 42.9    115.0      149
#  4    nonEst   NA   NA       NA       NA
# and pairs(): the three contrasts with diet 4 nonEst.
suppressMessages({library(lme4); library(emmeans)})
d <- read.csv("hierlm/datasets/data/ChickWeight.csv")
d$Chick <- factor(d$Chick); d$Diet <- factor(d$Diet)
d$early <- factor(ifelse(d$Time < 10, "yes", "no"), levels = c("no", "yes"))
s <- d[!(d$Diet == "4" & d$early == "yes"), ]
m <- lmer(weight ~ Diet * early + (1 | Chick), s)
e <- emmeans(m, ~ Diet)
print(e)
print(pairs(e))
print(emmeans(m, ~ Diet * early))
