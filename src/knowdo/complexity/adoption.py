"""Adoption of a practice by providers or sites on a network: Bass external influence plus peer influence.

Each agent (provider or site) is a node; it adopts under **external
influence** ``p`` (training, mandates, facilitation; Bass 1969) and **peer
influence** from the share of its neighbours already adopting, either as a
hazard ``p + q x share`` or as a threshold (adopt once the share reaches the
agent's own threshold; Granovetter, Valente 1996), and adopters
**discontinue** at rate ``d``. Updates are synchronous.

All replications run at once: the state is an ``(agents, replications)``
array and each step is one sparse product ``A @ X`` (scipy.sparse CSR), so
10^4 to 10^6 agents and hundreds of replications fit in one array; an
agent-by-agent framework such as Mesa takes 50-145x longer on the stepping loop
(complexity.md section 2.3). Networks come from the user's referral or
supervision edges when present, otherwise they are generated with networkx
(small world, clustered, random regular, or blocks such as districts).

With many neighbours and small steps the share of adopting neighbours tends to
the population share ``F``, and the mean curve tends to the Bass equation
``dF/dt = (p + q F)(1 - F) - d F`` (:func:`bass_curve`), which the tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from knowdo.complexity.results import LEVEL, AdoptionResult
from knowdo.equity.common import check_option
from knowdo.errors import ParameterError

NetworkKind = Literal["small_world", "clustered", "random", "blocks"]
NETWORK_KINDS: tuple[str, ...] = ("small_world", "clustered", "random", "blocks")
Rule = Literal["hazard", "threshold"]
RULES: tuple[str, ...] = ("hazard", "threshold")

DEFAULT_EXTERNAL = 0.002  # per month; complexity.md section 2.3 benchmark (Bass p ~ 0.03/yr, Sultan et al. 1990)
DEFAULT_PEER = 0.15  # per month; complexity.md section 2.3 (Bass q ~ 0.38/yr typical 0.3-0.5)
DEFAULT_DISCONTINUATION = 0.01  # per month; complexity.md section 2.3
DEFAULT_DEGREE = 10  # Watts-Strogatz k = 10, complexity.md section 2.3
DEFAULT_REWIRE = 0.1  # Watts-Strogatz rewiring, complexity.md section 2.3
DEFAULT_SEEDS = 0.01  # share of agents adopting at the start, complexity.md section 2.3
DEFAULT_THRESHOLD = (0.0, 0.5)  # uniform thresholds U(0, 0.5), Valente 1996 (complexity.md section 1.2)


def make_network(agents: int, *, kind: NetworkKind = "small_world", degree: int = DEFAULT_DEGREE,
                 rewire: float = DEFAULT_REWIRE, triangles: float = 0.5, groups: Sequence[int] | None = None,
                 between: float = 0.01, seed: int = 0) -> sp.csr_array:
    """A generated undirected network as a CSR adjacency matrix (float32), built with networkx.

    Parameters
    ----------
    agents
        Number of nodes.
    kind
        ``'small_world'`` (Watts-Strogatz, ``degree``, ``rewire``), ``'clustered'``
        (Holme-Kim power-law with triangle probability ``triangles``), ``'random'``
        (random regular of ``degree``) or ``'blocks'`` (``groups`` of sizes, e.g. clinics per
        district, fully connected inside and linked with probability ``between`` across).

    Examples
    --------
    >>> make_network(100, degree=4).shape
    (100, 100)
    """
    check_option("kind", kind, NETWORK_KINDS)
    if not isinstance(agents, int | np.integer) or agents < 2:
        raise ParameterError(f"make_network: agents must be a whole number >= 2; saw {agents!r}")
    if kind != "blocks" and not (isinstance(degree, int | np.integer) and 1 <= degree < agents):
        raise ParameterError(f"make_network: degree must be a whole number in [1, agents); saw {degree!r}")
    if kind == "small_world":
        graph = nx.watts_strogatz_graph(int(agents), int(degree), float(rewire), seed=seed)
    elif kind == "clustered":
        graph = nx.powerlaw_cluster_graph(int(agents), max(1, int(degree) // 2), float(triangles), seed=seed)
    elif kind == "random":
        if agents * degree % 2:
            raise ParameterError(f"make_network: a random regular network needs agents x degree even; "
                                 f"saw {agents} x {degree}")
        graph = nx.random_regular_graph(int(degree), int(agents), seed=seed)
    else:
        sizes = [int(g) for g in (groups or [])]
        if sum(sizes) != agents or min(sizes, default=0) < 1:
            raise ParameterError(f"make_network: blocks need group sizes adding up to {agents}; saw {groups!r}")
        probs = np.full((len(sizes), len(sizes)), float(between))
        np.fill_diagonal(probs, 1.0)
        graph = nx.stochastic_block_model(sizes, probs.tolist(), seed=seed)
    return sp.csr_array(nx.to_scipy_sparse_array(graph, nodelist=range(int(agents)), format="csr", dtype=np.float32))


def network_from_edges(edges: pd.DataFrame, nodes: Sequence[str] | None = None,
                       source: str = "source", target: str = "target") -> tuple[sp.csr_array, list[str]]:
    """An undirected CSR adjacency from an edge list (e.g. referrals or supervision links) and the node order."""
    for column in (source, target):
        if column not in edges.columns:
            raise ParameterError(f"network_from_edges: the edge list needs column {column!r}; "
                                 f"it has {', '.join(map(str, edges.columns))}")
    graph = nx.Graph()
    if nodes is not None:
        graph.add_nodes_from(nodes)
    graph.add_edges_from(zip(edges[source].astype(str), edges[target].astype(str), strict=True))
    order = [str(n) for n in (nodes if nodes is not None else sorted(graph.nodes))]
    matrix = nx.to_scipy_sparse_array(graph, nodelist=order, format="csr", dtype=np.float32)
    return sp.csr_array(matrix), order


def bass_curve(t: np.ndarray | Sequence[float], external: float, peer: float, discontinuation: float = 0.0,
               start: float = 0.0) -> np.ndarray:
    """Share adopting at times ``t`` under ``dF/dt = (p + q F)(1 - F) - d F`` with ``F(0) = start``.

    Without discontinuation and from zero this is Bass's closed form
    ``(1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t})``; otherwise it is integrated numerically.
    """
    t = np.asarray(t, dtype=float)
    p, q, d = float(external), float(peer), float(discontinuation)
    if d == 0 and start == 0 and p > 0:
        e = np.exp(-(p + q) * t)
        return np.asarray((1 - e) / (1 + (q / p) * e))
    sol = solve_ivp(lambda _, f: (p + q * f) * (1 - f) - d * f, (0.0, float(t.max(initial=0.0))), [start],
                    t_eval=np.sort(t), rtol=1e-10, atol=1e-12)
    out = np.empty_like(t)
    out[np.argsort(t)] = sol.y[0]
    return out


def fit_bass(times: np.ndarray | Sequence[float], adopted_share: np.ndarray | Sequence[float]) -> dict[str, float]:
    """Quick least-squares fit of Bass ``p`` and ``q`` to an observed cumulative adoption share."""
    t = np.asarray(times, dtype=float)
    y = np.asarray(adopted_share, dtype=float)
    if t.shape != y.shape or t.size < 3:
        raise ParameterError("fit_bass: need at least 3 (time, share) pairs of equal length")

    def resid(x: np.ndarray) -> np.ndarray:
        return bass_curve(t, np.exp(x[0]), np.exp(x[1])) - y

    fit = least_squares(resid, x0=np.log([0.01, 0.2]), bounds=(np.log([1e-5, 1e-5]), np.log([1.0, 5.0])))
    p, q = np.exp(fit.x)
    return {"external": float(p), "peer": float(q), "rmse": float(np.sqrt(np.mean(fit.fun**2)))}


class NetworkAdoption:
    """Bass-plus-peer adoption with discontinuation, all replications in one array.

    Parameters
    ----------
    external, peer, discontinuation
        Monthly rates ``p``, ``q`` and ``d``; each may be a number or one value per replication
        (so an ABC batch of parameter draws runs as one array).
    rule
        ``'hazard'``: a non-adopter adopts with probability ``1 - exp(-(p + q x share) dt)``;
        ``'threshold'``: adopts when the share of adopting neighbours reaches the agent's threshold,
        drawn ``U(threshold)``, or by external influence.
    seeds
        Share of agents adopting at the start (chosen at random per replication).
    substeps
        Updates per month (more substeps approach continuous time).

    Examples
    --------
    >>> A = make_network(1_000, degree=6, seed=1)
    >>> result = NetworkAdoption(external=0.01, peer=0.3).run(A, steps=24, replications=8, seed=2)
    >>> bool(0 < result.curve["mean"].iloc[-1] < 1)
    True
    """

    def __init__(self, *, external: float | np.ndarray = DEFAULT_EXTERNAL, peer: float | np.ndarray = DEFAULT_PEER,
                 discontinuation: float | np.ndarray = DEFAULT_DISCONTINUATION, rule: Rule = "hazard",
                 threshold: tuple[float, float] = DEFAULT_THRESHOLD, seeds: float = DEFAULT_SEEDS,
                 substeps: int = 1) -> None:
        self.external = external
        self.peer = peer
        self.discontinuation = discontinuation
        self.rule = rule
        self.threshold = threshold
        self.seeds = seeds
        self.substeps = substeps

    def _rates(self, replications: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = []
        for name in ("external", "peer", "discontinuation"):
            value = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if value.size not in (1, replications) or not np.all(np.isfinite(value)) or np.any(value < 0):
                raise ParameterError(f"NetworkAdoption: {name} must be non-negative, one value or one per "
                                     f"replication ({replications}); saw {getattr(self, name)!r}")
            out.append(np.broadcast_to(value, (replications,)).astype(np.float32)[None, :])
        return out[0], out[1], out[2]

    def run(self, adjacency: sp.sparray | sp.spmatrix | int, *, steps: int = 60, replications: int = 100,
            seed: int = 0, external_multiplier: np.ndarray | None = None, network: str = "user") -> AdoptionResult:
        """Simulate ``steps`` months and return the adoption curve with replication uncertainty.

        ``adjacency`` is a sparse matrix, or a whole number ``n`` for the complete graph on ``n``
        agents (everyone's neighbours are everyone else: the well-mixed population of the Bass
        model, computed from counts instead of an ``n x n`` matrix).
        ``external_multiplier`` scales ``p`` per agent (e.g. 2 for sites that get facilitation).
        """
        check_option("rule", self.rule, RULES)
        complete = isinstance(adjacency, int | np.integer)
        if complete:
            n = int(adjacency)
            if n < 2:
                raise ParameterError(f"NetworkAdoption.run: a complete graph needs >= 2 agents; saw {n}")
            a = None
        else:
            a = sp.csr_array(adjacency, dtype=np.float32)
            n = a.shape[0]
            if a.shape != (n, n) or n < 2:
                raise ParameterError(f"NetworkAdoption.run: adjacency must be square with >= 2 agents; "
                                     f"saw {a.shape}")
        for name, value in (("steps", steps), ("replications", replications), ("substeps", self.substeps)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ParameterError(f"NetworkAdoption.run: {name} must be a positive whole number; saw {value!r}")
        if not 0 <= self.seeds < 1:
            raise ParameterError(f"NetworkAdoption: seeds must be a share in [0, 1); saw {self.seeds!r}")
        p, q, d = self._rates(replications)
        mult = np.ones((n, 1), dtype=np.float32)
        if external_multiplier is not None:
            mult = np.asarray(external_multiplier, dtype=np.float32).reshape(n, 1)
        rng = np.random.default_rng(seed)
        degree = (np.full((n, 1), n - 1, dtype=np.float32) if a is None else
                  np.asarray(a.sum(axis=1)).reshape(n, 1).astype(np.float32))
        inv_degree = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0).astype(np.float32)
        state = rng.random((n, replications), dtype=np.float32) < self.seeds
        ever = state.copy()
        low, high = self.threshold
        theta = (rng.uniform(low, high, (n, replications)).astype(np.float32) if self.rule == "threshold" else None)
        h = np.float32(1.0 / self.substeps)
        adopting = np.empty((steps + 1, replications))
        ever_share = np.empty((steps + 1, replications))
        adopting[0] = state.mean(axis=0)
        ever_share[0] = ever.mean(axis=0)
        p_agent = p * mult  # (N, R)
        stop = -np.expm1(-d * h)
        single = replications == 1 and a is not None
        for step in range(steps):
            for _ in range(self.substeps):
                if a is None:
                    share = (state.sum(axis=0, dtype=np.float32)[None, :] - state) * inv_degree
                elif single:  # a sparse matrix-vector product is faster than a one-column matrix product
                    share = (a @ state[:, 0].astype(np.float32))[:, None] * inv_degree
                else:
                    share = (a @ state.astype(np.float32)) * inv_degree
                # one uniform per agent: adopters compare it with the stopping probability, others with adoption
                u = rng.random((n, replications), dtype=np.float32)
                if theta is None:
                    adopt = u < -np.expm1(-(p_agent + q * share) * h)
                else:
                    adopt = (share >= theta) | (u < -np.expm1(-p_agent * h))
                state = np.where(state, u >= stop, adopt)
                ever |= state
            adopting[step + 1] = state.mean(axis=0)
            ever_share[step + 1] = ever.mean(axis=0)
        return _adoption_result(adopting, ever_share, n, replications, network, self._settings())

    def _settings(self) -> dict[str, Any]:
        def plain(x: Any) -> Any:
            arr = np.asarray(x)
            return float(arr) if arr.ndim == 0 else f"{arr.size} values, mean {float(arr.mean()):.4g}"

        return {"external": plain(self.external), "peer": plain(self.peer),
                "discontinuation": plain(self.discontinuation), "rule": self.rule,
                "threshold": list(self.threshold), "seeds": self.seeds, "substeps": self.substeps}


def _adoption_result(adopting: np.ndarray, ever: np.ndarray, agents: int, replications: int, network: str,
                     settings: dict[str, Any]) -> AdoptionResult:
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(adopting, [tail, 100 - tail], axis=1)
    se = adopting.std(axis=1, ddof=1) / np.sqrt(replications) if replications > 1 else np.full(len(adopting), np.nan)
    steps = np.arange(adopting.shape[0])
    curve = pd.DataFrame({"step": steps, "time": steps.astype(float), "mean": adopting.mean(axis=1),
                          "std_error": se, "conf_low": lo, "conf_high": hi, "ever_mean": ever.mean(axis=1)})
    return AdoptionResult(curve=curve, agents=agents, replications=replications, network=network,
                          settings=settings, final=adopting[-1].copy(), paths=adopting)


def simulate_adoption(agents: int = 10_000, *, steps: int = 60, replications: int = 100, seed: int = 0,
                      kind: NetworkKind = "small_world", **settings: Any) -> AdoptionResult:
    """One call: generate a network and run :class:`NetworkAdoption` on it.

    Examples
    --------
    >>> simulate_adoption(2_000, steps=12, replications=4).replications
    4
    """
    network_keys = {"degree", "rewire", "triangles", "groups", "between"}
    net = {k: settings.pop(k) for k in list(settings) if k in network_keys}
    adjacency = make_network(agents, kind=kind, seed=seed, **net)
    return NetworkAdoption(**settings).run(adjacency, steps=steps, replications=replications, seed=seed + 1,
                                           network=kind)
