"""Running a PyMC model: NUTS through nutpie, PyMC or NumPyro, ADVI and MAP.

Every route returns ArviZ InferenceData whose posterior holds the variables in
``var_names`` with dims ``(chain, draw, ...)``, so the model classes post-process
one shape whatever the method.

nutpie can evaluate a PyMC model in two ways, chosen by ``backend``:

* ``"numba"``: nutpie's own route, the model compiled to machine code by Numba.
  Chains run in parallel threads, but compilation takes 5-30 s.
* ``"c"``: the log density and its gradient compiled by PyTensor's C backend
  (cached on disk, so about a second after the first time) and handed to nutpie as
  a Python callable. A C function holds the interpreter lock, so on Linux the
  chains run in processes forked after compilation (``cores`` of them); this wins
  whenever a gradient costs less than compiling would: small or well-compressed
  data.

A density that needs no graph at all (a pooled model's, written in NumPy) goes to
nutpie the same way as the C route, through :func:`sample_density`.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

__all__ = ["run_inference", "sample_density"]

# Above this many per-row likelihood terms nutpie's Numba route is the faster one:
# its compile time is repaid by cheaper, parallel gradient evaluations.
AUTO_NUMBA_TERMS = 5_000


def _seed(random_state: Any) -> int | None:
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(random_state)


def _joined_inputs(
    model: pm.Model, point: dict[str, np.ndarray]
) -> tuple[pt.TensorVariable, dict, list, list]:
    """One flat input vector standing for all value variables of ``model``."""
    joined = pt.dvector("joined_values")
    replace, shapes, names = {}, [], []
    start = 0
    for value in model.value_vars:
        shape = tuple(np.shape(point[value.name]))
        size = int(np.prod(shape))
        replace[value] = joined[start : start + size].reshape(shape)
        shapes.append(shape)
        names.append(value.name)
        start += size
    return joined, replace, shapes, names


def _initial_point(model: pm.Model) -> dict[str, np.ndarray]:
    """Zero for every unconstrained value (Stan's convention), else PyMC's default.

    PyMC's own initial point compiles a function (a third of a second); with static
    shapes zeros need none. The chains jitter around it either way.
    """
    shapes = [value.type.shape for value in model.value_vars]
    if all(n is not None for shape in shapes for n in shape):
        return {
            value.name: np.zeros(shape)
            for value, shape in zip(model.value_vars, shapes, strict=True)
        }
    return model.initial_point()


def _pyfunc_model(
    make_logp_fn: Callable[[], Callable[[np.ndarray], tuple[float, np.ndarray]]],
    make_expand_fn: Callable[[], Callable[[np.ndarray], Sequence[Any]]],
    start: np.ndarray,
    var_names: Sequence[str],
    dims: dict[str, tuple[str, ...]] | None = None,
    coords: dict[str, list] | None = None,
):
    """A nutpie model from Python callables: a log density with its gradient, and
    the map from a position to the stored variables (``var_names``, in order).

    Each ``make_*`` is called once per chain, so a callable that owns buffers can
    hand every chain its own copy.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    probe = make_expand_fn()
    shapes = [tuple(int(s) for s in np.shape(v)) for v in probe(start)]
    # One evaluation here loads any JIT-compiled kernels once, before the chains
    # fork, instead of once in every worker process.
    make_logp_fn()(start)

    def logp_factory():
        fn = make_logp_fn()

        def logp_and_grad(x):
            value, gradient = fn(x)
            return float(value), np.array(gradient, dtype=np.float64)

        return logp_and_grad

    def expand_factory(seed1, seed2, chain):
        fn = make_expand_fn()

        def expand(x):
            return {
                name: np.array(value, dtype=np.float64)
                for name, value in zip(var_names, fn(x), strict=True)
            }

        return expand

    def initial_point(seed):
        # Small jitter: every free variable of our models is standardised.
        rng = np.random.default_rng(seed)
        return start + rng.uniform(-0.5, 0.5, size=start.size)

    dims = {k: v for k, v in (dims or {}).items() if v}
    return from_pyfunc(
        start.size,
        logp_factory,
        expand_factory,
        [np.dtype("float64")] * len(var_names),
        shapes,
        list(var_names),
        coords=coords or {},
        dims=dims,
        make_initial_point_fn=initial_point,
    )


def _nutpie_c_model(model: pm.Model, var_names: Sequence[str]):
    """A nutpie model whose log density runs on PyTensor's C backend."""
    point = _initial_point(model)
    joined, replace, _, _ = _joined_inputs(model, point)
    logp = model.logp()
    grad = pt.concatenate([g.ravel() for g in pt.grad(logp, model.value_vars)])
    logp_j, grad_j = pytensor.clone_replace([logp, grad], replace=replace)
    logp_fn = pytensor.function([joined], [logp_j, grad_j], trust_input=True)

    outputs = [model[name] for name in var_names]
    expanded = pytensor.clone_replace(model.replace_rvs_by_values(outputs), replace=replace)
    expand_fn = pytensor.function([joined], expanded, trust_input=True)

    start = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    dims = {name: tuple(model.named_vars_to_dims.get(name, ())) for name in var_names}
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    # A compiled function owns its buffers: one copy per chain thread.
    return _pyfunc_model(logp_fn.copy, expand_fn.copy, start, var_names, dims, coords)


# State shared with forked worker processes (set just before the fork).
_FORK_STATE: dict[str, Any] = {}


def _sample_part(part: tuple[int, int | None, bool]) -> az.InferenceData:
    import nutpie

    n_chains, seed, progress = part
    state = _FORK_STATE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nutpie.sample(
            state["compiled"],
            chains=n_chains,
            seed=seed,
            progress_bar=progress,
            **state["kwargs"],
        )


def _concat_chains(parts: list[az.InferenceData]) -> az.InferenceData:
    """Join InferenceData from separate runs along ``chain``, renumbering chains."""
    import xarray as xr

    groups = {}
    for name in parts[0].groups():
        datasets, offset = [], 0
        for part in parts:
            ds = part[name]
            n = ds.sizes.get("chain", 0)
            datasets.append(ds.assign_coords(chain=np.arange(offset, offset + n)))
            offset += n
        merged = xr.concat(datasets, dim="chain", combine_attrs="override")
        groups[name] = merged
    return az.InferenceData(**groups)


def _sample_in_processes(
    compiled: Any, chains: int, seed: int | None, progressbar: bool, cores: int, **kwargs: Any
) -> az.InferenceData:
    """Run the chains of a Python-callable model in ``cores`` forked processes.

    A log density evaluated from Python holds the interpreter lock, so threads
    cannot run chains in parallel; processes forked after compilation inherit the
    model for free. Falls back to one process where fork is unavailable, and, with a
    warning, where a sampling process dies: a process forked from one that runs other
    threads (Spark, Polars, a Rust runtime) inherits their locks but not the threads,
    and may not live. A ``concurrent.futures`` pool reports such a death;
    ``multiprocessing.Pool`` waited for its result for ever.
    """
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    n_proc = max(1, min(chains, cores))
    if n_proc == 1 or not sys.platform.startswith("linux"):
        return _sample_part_direct(compiled, chains, seed, progressbar, **kwargs)
    sizes = [chains // n_proc + (i < chains % n_proc) for i in range(n_proc)]
    seeds = np.random.SeedSequence(seed).generate_state(n_proc)
    parts = [
        (size, int(s), progressbar and i == 0)
        for i, (size, s) in enumerate(zip(sizes, seeds, strict=True))
    ]
    _FORK_STATE.update(compiled=compiled, kwargs={**kwargs, "cores": 1})
    others = set(multiprocessing.active_children())
    try:
        try:
            pool = ProcessPoolExecutor(
                n_proc, mp_context=multiprocessing.get_context("fork"),
                initializer=_default_termination,
            )
        except OSError:
            return _sample_part_direct(compiled, chains, seed, progressbar, **kwargs)
        # Leaving the block ends the workers on the pool's own sentinels.
        with pool:
            try:
                results = list(pool.map(_sample_part_in_worker, parts))
            except BrokenProcessPool:
                raise
            except BaseException:
                # An interrupt (Ctrl-C, a notebook's stop) must not wait for the chains
                # to finish: the pool's workers are ended here.
                for process in set(multiprocessing.active_children()) - others:
                    process.terminate()
                raise
    except BrokenProcessPool as err:
        warnings.warn(
            f"a process sampling chains in parallel ended abruptly ({err}); all {chains} "
            "chains ran again in this process, one after the other",
            RuntimeWarning,
            stacklevel=4,
        )
        return _sample_part_direct(compiled, chains, seed, progressbar, **kwargs)
    finally:
        _FORK_STATE.clear()
    return _concat_chains(results)


def _sample_part_in_worker(part: tuple[int, int | None, bool]) -> az.InferenceData:
    """:func:`_sample_part` in a forked worker. An error comes back as a RuntimeError
    naming its type and message: the sampler's own (a Rust panic, when the density
    raised) cannot be pickled, and the parent would see only a PicklingError."""
    try:
        return _sample_part(part)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:
        raise RuntimeError(
            f"sampling in a worker process failed: {type(err).__name__}: {err}"
        ) from None


def _default_termination() -> None:
    """In a forked worker: SIGTERM ends the process, whatever handler the parent had
    (a command-line forecast's handler, inherited, once kept a worker alive)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sample_part_direct(
    compiled: Any, chains: int, seed: int | None, progressbar: bool, **kwargs: Any
) -> az.InferenceData:
    _FORK_STATE.update(compiled=compiled, kwargs={**kwargs, "cores": 1})
    try:
        return _sample_part((chains, seed, progressbar))
    finally:
        _FORK_STATE.clear()


def _sample_nutpie(
    model: pm.Model,
    var_names: Sequence[str],
    *,
    backend: str,
    n_terms: int,
    draws: int,
    tune: int,
    chains: int,
    random_state: int | None,
    progressbar: bool,
    **kwargs: Any,
) -> az.InferenceData:
    import os

    import nutpie

    if backend == "auto":
        backend = "numba" if n_terms > AUTO_NUMBA_TERMS else "c"
    cores = int(kwargs.pop("cores", min(chains, os.cpu_count() or 1)))
    if backend == "c":
        compiled = _nutpie_c_model(model, var_names)
        idata = _sample_in_processes(
            compiled, chains, random_state, progressbar, cores, draws=draws, tune=tune, **kwargs
        )
    elif backend == "numba":
        compiled = nutpie.compile_pymc_model(model, var_names=list(var_names))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                seed=random_state,
                progress_bar=progressbar,
                cores=cores,
                **kwargs,
            )
    else:
        raise ValueError(f"backend must be 'auto', 'c' or 'numba', got {backend!r}")
    # nutpie's own route keeps every free variable; the callers want var_names only.
    idata.posterior = idata.posterior[list(var_names)]
    idata.posterior.attrs["nutpie_backend"] = backend
    return idata


def sample_density(
    make_logp_fn: Callable[[], Callable[[np.ndarray], tuple[float, np.ndarray]]],
    make_expand_fn: Callable[[], Callable[[np.ndarray], Sequence[Any]]],
    start: np.ndarray,
    var_names: Sequence[str],
    *,
    draws: int,
    tune: int,
    chains: int,
    random_state: Any,
    progressbar: bool,
    dims: dict[str, tuple[str, ...]] | None = None,
    coords: dict[str, list] | None = None,
    **kwargs: Any,
) -> az.InferenceData:
    """NUTS (nutpie) on a log density given as Python callables, no graph compiled.

    ``make_logp_fn()`` returns ``x -> (log density, gradient)`` and
    ``make_expand_fn()`` returns ``x -> values of var_names``; see
    :func:`run_inference` for the rest.
    """
    import os

    cores = int(kwargs.pop("cores", min(chains, os.cpu_count() or 1)))
    compiled = _pyfunc_model(make_logp_fn, make_expand_fn, start, var_names, dims, coords)
    idata = _sample_in_processes(
        compiled, chains, _seed(random_state), progressbar, cores, draws=draws, tune=tune,
        **kwargs,
    )
    idata.posterior = idata.posterior[list(var_names)]
    idata.posterior.attrs["nutpie_backend"] = "numpy"
    return idata


def run_inference(
    model: pm.Model,
    var_names: Sequence[str],
    *,
    method: str,
    sampler: str,
    backend: str,
    n_terms: int,
    draws: int,
    tune: int,
    chains: int,
    random_state: Any,
    progressbar: bool,
    **kwargs: Any,
) -> az.InferenceData:
    """Fit ``model`` and return InferenceData holding ``var_names`` in its posterior.

    ``method`` is ``"nuts"`` (with ``sampler`` ``"nutpie"``, ``"pymc"`` or
    ``"numpyro"``), ``"advi"`` (``draws`` draws from the fitted approximation) or
    ``"map"`` (a single draw: the posterior mode). Extra keyword arguments go to the
    underlying routine (``nutpie.sample``, ``pm.sample``, ``pm.fit`` or
    ``pm.find_MAP``).
    """
    seed = _seed(random_state)
    var_names = list(var_names)
    if method == "nuts":
        if sampler == "nutpie":
            return _sample_nutpie(
                model,
                var_names,
                backend=backend,
                n_terms=n_terms,
                draws=draws,
                tune=tune,
                chains=chains,
                random_state=seed,
                progressbar=progressbar,
                **kwargs,
            )
        if sampler == "numpyro" and importlib.util.find_spec("numpyro") is None:
            raise ImportError(
                "sampler='numpyro' needs NumPyro and JAX, which are not installed: "
                "`pip install numpyro` (or use sampler='nutpie', the default)."
            )
        if sampler not in ("pymc", "numpyro"):
            raise ValueError(f"sampler must be 'nutpie', 'pymc' or 'numpyro', got {sampler!r}")
        with model:
            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=seed,
                progressbar=progressbar,
                nuts_sampler=sampler,
                var_names=var_names,
                compute_convergence_checks=False,
                **kwargs,
            )
    if method == "advi":
        n_iterations = int(kwargs.pop("n", 30_000))
        with model:
            approx = pm.fit(
                n=n_iterations,
                method="advi",
                random_seed=seed,
                progressbar=progressbar,
                **kwargs,
            )
            idata = approx.sample(draws, random_seed=seed)
        idata.posterior = idata.posterior[var_names]
        return idata
    if method == "map":
        with model:
            point = pm.find_MAP(progressbar=progressbar, seed=seed, **kwargs)
        posterior = {name: np.asarray(point[name])[None, None, ...] for name in var_names}
        dims = {
            name: list(model.named_vars_to_dims[name])
            for name in var_names
            if name in model.named_vars_to_dims
        }
        coords = {k: list(v) for k, v in model.coords.items() if v is not None}
        return az.from_dict(posterior=posterior, dims=dims, coords=coords)
    raise ValueError(f"method must be 'nuts', 'advi' or 'map', got {method!r}")
