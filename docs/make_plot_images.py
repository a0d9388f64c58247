"""Regenerate every image in docs/images/ (the figures of docs/plots.md).

Run from the repository root: python docs/make_plot_images.py  (about a minute;
the NUTS fit compiles once).  Each image is drawn by the call docs/plots.md shows.
"""

import runpy
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import hierlm  # noqa: E402

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
DPI = 100
MAX_BYTES = 200_000


def save(fig, name: str) -> None:
    path = IMAGES / name
    # no software/date metadata: the same code gives the same bytes
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    size = path.stat().st_size
    if size > MAX_BYTES:
        # dense traces: a 256-colour palette looks the same at a third of the size
        from PIL import Image

        with Image.open(path) as im:
            im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                path, optimize=True)
        size = path.stat().st_size
    print(f"{path.relative_to(HERE.parent)}: {size / 1000:.0f} kB")
    if size > MAX_BYTES:
        raise SystemExit(f"{name} is {size} bytes, over {MAX_BYTES}: make the figure smaller")


def cbpp_shrinkage():
    """The shrinkage plot of the cbpp binomial GLMM (docs/plots.md, "GLMM fits")."""
    from hierlm import plots

    cbpp = hierlm.datasets.load("cbpp")
    fit = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    return plots.shrinkage(fit, "herd")


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    sleep = hierlm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"

    # the teaching example: 20 groups of 1 to 200 observations
    example = runpy.run_path(str(HERE.parent / "examples" / "partial_pooling.py"), run_name="docs")
    teach = hierlm.lmer("y ~ 1 + (1 | g)", example["simulate"]())
    save(teach.plot("shrinkage", group="g"), "shrinkage_1d.png")

    reml = hierlm.lmer(formula, sleep)
    save(reml.plot("shrinkage"), "shrinkage_2d.png")
    save(reml.plot("caterpillar"), "caterpillar.png")
    save(reml.plot("diagnostics", covariate="Days"), "diagnostics.png")
    save(reml.plot("facets"), "facets.png")
    save(reml.plot("facets", pooling=True), "facets_pooling.png")
    save(reml.plot("predictions"), "predictions.png")
    save(reml.plot("qqcaterpillar"), "qqcaterpillar.png")
    chicks = hierlm.lmer("weight ~ Time * Diet + (Time | Chick)", hierlm.datasets.load("ChickWeight"))
    save(chicks.plot("predictions", by="Diet"), "predictions_by.png")
    wine = hierlm.glmer("rating ~ temp + contact + (1 | judge)", hierlm.datasets.load("wine"), family="ordinal")
    save(wine.plot("diagnostics"), "diagnostics_ordinal.png")

    # a binomial GLMM: shrinkage on the logit scale
    save(cbpp_shrinkage(), "shrinkage_cbpp.png")

    pen = hierlm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", hierlm.datasets.load("Penicillin"))
    save(pen.plot("caterpillar"), "caterpillar_penicillin.png")
    save(pen.plot("shrinkage", group="plate"), "shrinkage_penicillin.png")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        nuts = hierlm.Model(formula, sleep).fit("nuts", draws=500, tune=500, chains=4, random_seed=1,
                                                progressbar=False)
    save(nuts.plot("shrinkage", terms="Days"), "shrinkage_nuts.png")
    save(nuts.plot("predictions", predictive=True), "predictions_nuts.png")
    save(nuts.plot("forest"), "forest.png")
    save(nuts.plot("ppc", num_pp_samples=100, random_seed=1), "ppc.png")
    save(nuts.plot("trace"), "trace.png")
    save(nuts.plot("rank"), "rank.png")
    save(nuts.plot("ridge"), "ridge.png")


if __name__ == "__main__":
    main()
