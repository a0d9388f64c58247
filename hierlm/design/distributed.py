"""A model on data that lives on a Dask cluster: its Gram blocks by map-reduce.

``hierlm.lmer(formula, ddf)`` with a ``dask.dataframe.DataFrame`` never
brings the rows into one process.  Two passes over the partitions, both on
the cluster:

1. **Levels.**  Each partition drops its incomplete rows (lme4's
   ``na.omit``) and reports the values of its factor columns, the level
   combinations of each grouping factor and a few of its rows; the union
   gives every factor the levels R would give it on the whole data (sorted
   as :func:`hierlm.design.data.as_factor` sorts them; a categorical keeps
   its category order), so that codes agree across partitions.
2. **Gram blocks.**  Each partition is coded with those levels (as
   ``predict(newdata)`` codes new rows), its model matrices built by the
   same builders, and its blocks of ``[Z X y]'[Z X y]``
   (:mod:`hierlm.design.gram`) summed up a tree of partial sums.

The fit then runs on the summed blocks, exactly as on data in memory (the
engines only read Gram blocks): the same numbers to rounding.  Aliased
fixed-effect columns are found from ``X'X`` (R's left-to-right rule).

What a model frame computes from a whole column, ``scale()``, ``poly()``
and ``center()``, is refused here: compute the column first.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula.parse import parse_formula
from ..formula.terms import CONSTANTS
from .build import Design, _response, check_sizes
from .data import PreparedData, _sorted_any, _suggest, prepare_data
from .fixed import MatrixBuilder, warn_dropped
from .gram import Gram, design_gram
from .remat import ReMat, group_labels, grouping_factor, lme4_order

#: transforms R evaluates on the whole column (their state is a statistic of all rows)
WHOLE_COLUMN = ("scale(", "poly(", "center(", "standardize(")
#: rows of each partition kept for the prototype the builders are made on
PROTOTYPE_ROWS = 20


def is_dask_frame(data) -> bool:
    """True for a ``dask.dataframe.DataFrame`` (not imported unless it is one)."""
    mod = type(data).__module__
    return mod.startswith(("dask.", "dask_expr")) and hasattr(data, "to_delayed")


def _prepare(part: pd.DataFrame, parsed) -> PreparedData | None:
    """A partition's rows without missing values, coded as prepare_data codes
    them (None when no row is left)."""
    used = [name for name, _ in parsed.variables() if name in part.columns]
    if not part[used].notna().all(axis=1).any():
        return None  # no complete row (or none at all): nothing of this partition enters the model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped rows are counted and reported once
        return prepare_data(part.reset_index(drop=True), parsed, "omit")


def _levels_of_partition(part: pd.DataFrame, parsed, factor_cols: list[str], groups: list[tuple]) -> dict:
    """Pass 1 on one partition: rows, dropped rows, factor values, level
    combinations of the grouping factors, and a few rows."""
    prep = _prepare(part, parsed)
    if prep is None:
        return {"n": 0, "dropped": len(part), "values": {}, "combos": {}, "head": None}
    frame = prep.frame
    values = {c: pd.unique(frame[c].astype(object) if isinstance(frame[c].dtype, pd.CategoricalDtype)
                           else frame[c]) for c in factor_cols}
    combos = {g: frame[list(g)].drop_duplicates() for g in groups}
    head = part.reset_index(drop=True).iloc[prep.rows[:PROTOTYPE_ROWS]]
    return {"n": len(frame), "dropped": prep.n_dropped, "values": values, "combos": combos, "head": head}


def _merge_levels(a: dict, b: dict) -> dict:
    values = {c: pd.unique(np.concatenate([a["values"].get(c, []), b["values"].get(c, [])]).astype(object))
              for c in set(a["values"]) | set(b["values"])}
    combos = {g: pd.concat([x for x in (a["combos"].get(g), b["combos"].get(g)) if x is not None],
                           ignore_index=True).drop_duplicates() for g in set(a["combos"]) | set(b["combos"])}
    heads = [h for h in (a["head"], b["head"]) if h is not None]
    return {"n": a["n"] + b["n"], "dropped": a["dropped"] + b["dropped"], "values": values, "combos": combos,
            "head": pd.concat(heads, ignore_index=True).iloc[: 4 * PROTOTYPE_ROWS] if heads else None}


def _tree(items: list, combine):
    """Delayed pairwise reduction (log depth: partial sums run on the workers)."""
    import dask

    items = list(items)
    while len(items) > 1:
        nxt = [dask.delayed(combine)(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def _global_categories(values, meta: pd.Series, known: bool) -> list:
    """A factor column's levels over all partitions, ordered as
    :func:`hierlm.design.data.as_factor` orders them."""
    present = set(values.tolist()) if len(values) else set()
    if isinstance(meta.dtype, pd.CategoricalDtype) and known:
        return [c for c in meta.cat.categories if c in present]
    if pd.api.types.is_bool_dtype(meta.dtype):
        return ["FALSE", "TRUE"]
    return _sorted_any(list(present))


def _code(prep, cats: dict[str, list]) -> pd.DataFrame:
    """A prepared partition's factor columns with the global levels."""
    frame = prep.frame.copy()
    for c, levels in cats.items():
        if c in frame.columns and isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].cat.set_categories(levels, ordered=frame[c].cat.ordered)
    return frame


def _partition_rows(part: pd.DataFrame, design: Design, cats: dict, family: str):
    """A partition's rows coded with the global levels: ``(X, y, remats)``
    with every column of the design's X builder (None: no complete row)."""
    parsed = design.formula
    prep = _prepare(part, parsed)
    if prep is None:
        return None
    frame = _code(prep, cats)
    prep = replace(prep, frame=frame, full=None)
    X = design.x_builder.rebuild(frame)
    y = _response(parsed, prep, family)
    remats = []
    for r in design.remats:
        sub = _rows_remat(r)
        sub.codes = pd.Index(r.levels).get_indexer(group_labels(frame, r.term.factors)).astype(np.intp)
        sub.Xt = np.ones((len(frame), 1)) if r.builder is None else r.builder.rebuild(frame)
        remats.append(sub)
    for what, M in [("fixed-effects", X)] + [(f"random-effects term {r.term}", r.Xt) for r in remats]:
        bad = ~np.isfinite(M)
        if bad.any():
            raise DataError(f"the {what} model matrix is not finite in {int(bad.any(axis=1).sum())} row(s) of a "
                            "partition (the log or square root of a negative number, or the log of 0?); remove "
                            "those rows or change the transformation")
    return X, y, remats


def _gram_of_partition(part: pd.DataFrame, cats: dict, proto: Design, family: str) -> Gram | None:
    """Pass 2 on one partition: its Gram blocks (with every column of X)."""
    rows = _partition_rows(part, proto, cats, family)
    if rows is None:
        return None
    X, y, remats = rows
    return design_gram(replace(proto, y=y, X=X, remats=remats, gram=None), dense=False)


def _categories(design: Design) -> dict[str, list]:
    """The global levels of a rows-free design's factor columns (kept on
    its prototype frame)."""
    frame = design.prepared.frame
    return {c: list(frame[c].cat.categories) for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}


def _responses_of_partition(j: int, part: pd.DataFrame, sim: Design, params: tuple, seeds: list,
                            targets: list[Design]) -> list | None:
    """Bootstrap responses on one partition, reduced to each target's
    ``(Z'Y, X'Y, diag(Y'Y))`` (one column per replicate)."""
    beta, Ts, sigma = params
    rows = _partition_rows(part, sim, _categories(sim), "gaussian")
    if rows is None:
        return None
    X, _, remats = rows
    base = X[:, sim.x_keep] @ beta
    Y = np.empty((base.size, len(seeds)))
    for s, ss in enumerate(seeds):
        # the random effects from the replicate's own stream (the same in
        # every partition); the residuals from the partition's
        rng_b = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, 0)))
        eta = base.copy()
        for r, T in zip(remats, Ts):
            eta += r.Zb(rng_b.standard_normal((r.nlevels, r.p)) @ T.T)
        rng_e = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, 1, j)))
        Y[:, s] = eta + sigma * rng_e.standard_normal(base.size)
    out = []
    for t in targets:
        Xt, _, rt = rows if t is sim else _partition_rows(part, t, _categories(t), "gaussian")
        Zty = np.vstack([np.asarray(r.sparse().T @ Y) for r in rt])
        out.append((Zty, Xt[:, t.x_keep].T @ Y, np.einsum("ij,ij->j", Y, Y)))
    return out


def _add_responses(a, b):
    if a is None or b is None:
        return b if a is None else a
    return [tuple(x + y for x, y in zip(ta, tb)) for ta, tb in zip(a, b)]


def simulated_responses(sim: Design, beta: np.ndarray, Ts: list[np.ndarray], sigma: float, seeds: list,
                        targets: list[Design]) -> list[list[tuple]]:
    """Parametric-bootstrap responses of a rows-free design, made and reduced
    on its cluster: ``y* = X beta + sum_k Z_k b*_k + sigma e`` with
    ``b*_k`` rows ``~ N(0, T_k T_k')`` (``Ts`` include sigma) for each
    replicate's ``numpy.random.SeedSequence``, reduced to what a refit
    needs, ``(Z'y*, X'y*, y*'y*)`` per target design.  The other blocks
    (``Z'Z``, ``Z'X``, ``X'X``) are the targets' own, reused.

    Returns
    -------
    list
        Per replicate, per target, ``(Zty, Xty, yty)``.
    """
    import dask

    parts = sim.rows_source.to_delayed()
    # what travels to the workers: the designs without their dask DataFrame
    # (which dask would take for a dependency of the task) or Gram blocks
    light = {id(d): replace(d, rows_source=None, gram=None) for d in (sim, *targets)}
    sim_, targets_ = light[id(sim)], [light[id(t)] for t in targets]
    # replicates in batches, so that Z'Y* stays a bounded size
    width = max(sum(r.q for r in t.remats) + t.p + 1 for t in targets)
    batch = int(max(1, min(len(seeds), 2e7 // width)))
    out: list[list[tuple]] = []
    resp = dask.delayed(_responses_of_partition)
    for start in range(0, len(seeds), batch):
        chunk = seeds[start: start + batch]
        total = _tree([resp(j, p, sim_, (beta, Ts, sigma), chunk, targets_) for j, p in enumerate(parts)],
                      _add_responses).compute()
        for s in range(len(chunk)):
            out.append([(Zty[:, s], Xty[:, s], float(yty[s])) for Zty, Xty, yty in total])
    return out


def _add(a: Gram | None, b: Gram | None) -> Gram | None:
    return b if a is None else a if b is None else a + b


def _rows_remat(r: ReMat) -> ReMat:
    """A copy of a term without rows (its levels, columns and builder)."""
    out = copy.copy(r)
    out.codes = np.zeros(0, dtype=np.intp)
    out.Xt = np.zeros((0, r.p))
    return out


def dask_design(formula: str, ddf, na_action: str = "omit", family: str = "gaussian", check=None) -> Design:
    """The design of ``formula`` on a ``dask.dataframe.DataFrame``: the
    levels agreed over all partitions, the Gram blocks summed on the cluster.

    Parameters
    ----------
    formula : str
        lme4 formula of a linear mixed model.
    ddf : dask.dataframe.DataFrame
    na_action : {"omit", "raise"}
    family : str
        ``"gaussian"`` only (REML/ML fits of linear mixed models).
    check : callable, optional
        Called with the design's prototype (its levels known, no rows, no
        blocks) after the first pass and before the Gram blocks are made: the
        engine's memory check, so that a model too big to fit fails before
        the second pass over the data.

    Returns
    -------
    Design
        Without rows (``design.rows_free``): ``y``, ``X`` are None, the
        ReMats hold only their levels, ``design.gram`` holds the blocks.
    """
    import dask

    if family != "gaussian":
        raise ModelError(f"a dask DataFrame is fit as a linear mixed model (family='gaussian'), not {family!r}; "
                         "for a GLMM, fit a pandas DataFrame (e.g. ddf.compute() or a sample of it)")
    if na_action not in ("omit", "raise"):
        raise DataError(f"na_action must be 'omit' or 'raise', not {na_action!r}")
    parsed = parse_formula(formula)
    for fn in WHOLE_COLUMN:
        pos = parsed.text.find(fn)
        if pos >= 0:
            raise FormulaError(
                f"{fn[:-1]}() is computed from the whole column, which a dask DataFrame holds across "
                f"partitions; compute the column first (e.g. ddf['x_s'] = (ddf.x - ddf.x.mean()) / ddf.x.std()) "
                "and use it in the formula", parsed.text, pos)
    if not parsed.random:
        raise FormulaError("the formula has no random-effects term such as (1 | group); a mixed model needs one")
    meta = ddf._meta
    for name, pos in parsed.variables():
        if name not in meta.columns and name not in CONSTANTS:
            raise FormulaError(f"unknown column {name!r}{_suggest(name, list(meta.columns))}", parsed.text, pos)
    grouping = {f for t in parsed.random for f in t.factors}
    used = [name for name, _ in parsed.variables() if name in meta.columns]
    factor_cols = [c for c in dict.fromkeys(used)
                   if c in grouping or isinstance(meta[c].dtype, pd.CategoricalDtype)
                   or pd.api.types.is_bool_dtype(meta[c].dtype) or not pd.api.types.is_numeric_dtype(meta[c].dtype)]
    groups = list(dict.fromkeys(tuple(t.factors) for t in parsed.random))

    parts = ddf.to_delayed()
    levels = dask.delayed(_levels_of_partition)
    summary = _tree([levels(p, parsed, factor_cols, groups) for p in parts], _merge_levels).compute()
    if summary["n"] == 0:
        raise DataError("every row has a missing value in the formula's columns (or the data has no rows); "
                        "nothing to fit")
    if summary["dropped"]:
        if na_action == "raise":
            raise DataError(f"{summary['dropped']} row(s) have missing values in the formula's columns; remove or "
                            "impute them, or use na_action='omit' to drop them")
        warnings.warn(f"dropped {summary['dropped']} of {summary['n'] + summary['dropped']} rows with missing "
                      "values", UserWarning, stacklevel=4)
    cats = {c: _global_categories(summary["values"].get(c, np.array([])), meta[c],
                                  isinstance(meta[c].dtype, pd.CategoricalDtype) and ddf[c].cat.known)
            for c in factor_cols}

    # the prototype: a few real rows, factor columns with every level, on
    # which the builders (formulaic's specs, R's names) are made once
    proto_prep = _prepare(summary["head"], parsed)
    proto_frame = _code(proto_prep, cats)
    proto_prep = replace(proto_prep, frame=proto_frame, full=None)
    x_builder = MatrixBuilder(parsed.fixed_terms, proto_frame, proto_prep.coding, parsed.text)
    remats = []
    for t in parsed.random:
        r = ReMat(t, proto_frame, proto_prep.coding, parsed.text)
        combos = summary["combos"][tuple(t.factors)].reset_index(drop=True)
        for f in t.factors:
            if isinstance(combos[f].dtype, pd.CategoricalDtype) or f in cats:
                combos[f] = pd.Categorical(combos[f].astype(object) if isinstance(combos[f].dtype,
                                           pd.CategoricalDtype) else combos[f], categories=cats[f])
        _, r.levels = grouping_factor(combos, t.factors)
        remats.append(_rows_remat(r))
    remats = lme4_order(remats)
    names = x_builder.names
    proto = Design(parsed, np.zeros(0), np.zeros((0, len(names))), names, remats, proto_prep, x_builder,
                   list(range(len(names))))

    if check is not None:
        check(proto)
    grams = [dask.delayed(_gram_of_partition)(p, cats, proto, family) for p in parts]
    gram = _tree(grams, _add).compute()
    keep = gram.rank_keep_x()
    warn_dropped(names, keep, stacklevel=5)
    gram = gram.keep_x(keep)
    check_sizes(gram.p, remats, gram.n, family)
    return Design(parsed, None, None, [names[j] for j in keep], remats, proto_prep, x_builder, keep.tolist(),
                  gram=gram, rows_source=ddf)
