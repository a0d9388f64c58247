# How lme4 prints anova tables (the text hierlm's ComparisonTable reproduces).
# Run from the repository root:  Rscript tests/reference/anova_print.R
suppressPackageStartupMessages(library(lme4))
sleep <- read.csv("hierlm/datasets/data/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
m0 <- lmer(Reaction ~ 1 + (1 | Subject), sleep)
mi <- lmer(Reaction ~ Days + (1 | Subject), sleep)
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleep)
out <- c(capture.output(print(suppressMessages(anova(mi, m1)))), "=====",
         capture.output(print(suppressMessages(anova(m0, mi, m1)))))
writeLines(out, "tests/reference/anova_print.txt")
