"""MCTO: Monte-Carlo Trajectory Optimisation, the paper's generator.

For one original trajectory:

1. Candidate start states: the ``n_starts`` most important states (lowest policy entropy) among the
   steps t < T - ``exclude_last`` (T = the original's length; the original code excludes starts >= 72
   of its 74-action episodes, where a counterfactual has at most two steps left).
2. From a start state s_t, grow the counterfactual one step at a time with Monte-Carlo tree search.
   A tree node is a counterfactual prefix. Its actions: one per distinct next state (among actions that
   reach the same state, e.g. a failed grab and a no-op, the policy's most likely one), at the root only
   those whose next state differs from the original's next state (so the counterfactual really
   deviates; a start without such an action is skipped); of these, the ones with pi(a|s) >
   ``threshold`` (divided by 10 until at least 3 qualify), plus a special END action that closes the
   counterfactual (not at the root). Each of ``n_iter`` iterations:
     selection   UCB1 (Q + c*sqrt(ln N / n)) down through fully expanded nodes;
     expansion   one untried action; with ``branching_heuristic`` the untried actions are tried in the
                 order of the quality of the one-step-longer CTE (computed once per node);
     simulation  a rollout that samples the policy (``policy_rollouts``; else uniform actions) and ends
                 with probability ``end_prob`` per step, at the episode end, or when the original runs
                 out; its value is the weighted quality of the finished CTE (the original is cut to the
                 counterfactual's length);
     backup      incremental mean of the values along the path.
   Then the root's child with the highest Q is committed and becomes the new root (the subtree is kept),
   until END is committed or the counterfactual reaches the episode end.
3. Of the CTEs from all start states keep the one with the highest quality, now including state
   importance (constant within one start state, so it is left out inside the search). When no start
   has a deviating action the original gets no CTE (``None``).

Speed: states are restored with ``set_state`` (no deep copies), policy probabilities and rewards are
cached per observation (:class:`alignkit.cte.core.Model`), and the networks run in numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate

import numpy as np

from alignkit.cte.core import CTE, GENERATORS, Generator, Segment, extend, step_cached
from alignkit.cte.criteria import CRITERIA

END = -1
SEARCH_CRITERIA = tuple(k for k in CRITERIA if k != "state_importance")

# The reference implementation's settings (janweh/Counterfactual-Trajectory-Explanations...,
# cte/generation_methods/counterfactual_mcto.py): 10 iterations per step, action threshold 0.003,
# end probability 0.2, policy rollouts, branching heuristic, one simulation per expansion; 10 start states.
PAPER_SETTINGS = dict(n_starts=10, n_iter=10, threshold=0.003, end_prob=0.2, policy_rollouts=True,
                      branching_heuristic=True, c_uct=math.sqrt(2), exclude_last=2)


def _copy(seg: Segment) -> Segment:
    return Segment(list(seg.states), list(seg.obs), list(seg.actions), list(seg.rewards), list(seg.logps))


class Node:
    __slots__ = ("parent", "action", "seg", "done", "children", "untried", "n", "q", "h")

    def __init__(self, parent, action, seg, done):
        self.parent, self.action, self.seg, self.done = parent, action, seg, done
        self.children: dict[int, Node] = {}
        self.untried: list[int] | None = None  # filled lazily
        self.n = 0
        self.q = 0.0
        self.h: dict[int, float] | None = None


@GENERATORS.register("mcto")
class MCTOGenerator(Generator):
    name = "mcto"

    def __init__(self, env, model, scorer, seed: int = 0, n_starts: int = 10, n_iter: int = 10,
                 threshold: float = 0.003, end_prob: float = 0.2, policy_rollouts: bool = True,
                 branching_heuristic: bool = True, c_uct: float = math.sqrt(2), max_len: int | None = None,
                 exclude_last: int = 2):
        super().__init__(env, model, scorer, seed=seed)
        self.exclude_last = exclude_last
        self.n_starts, self.n_iter, self.threshold, self.end_prob = n_starts, n_iter, threshold, end_prob
        self.policy_rollouts, self.branching_heuristic, self.c_uct = policy_rollouts, branching_heuristic, c_uct
        self.max_len = max_len

    # ----- the objective inside the search -----
    def _value(self, orig: Segment, t: int, cf: Segment) -> float:
        # the env is deterministic, so a CTE is fixed by (start, counterfactual actions): memoise
        key = (t, tuple(cf.actions))
        v = self._memo.get(key)
        if v is None:
            raw = self.scorer.raw(orig.cut(t, len(cf)), cf, t, importance=0.0)
            v = self._memo[key] = self.scorer.quality(raw, SEARCH_CRITERIA)
        return v

    def _rollout_action(self, obs) -> int:
        """Sample the policy restricted to pi > threshold (cumulative sums cached per observation)."""
        key = obs.tobytes()
        cum = self._cum.get(key)
        if cum is None:
            p = self.model.probs(obs)
            q = [x if x > self.threshold else 0.0 for x in p.tolist()]
            if sum(q) <= 0:
                q = p.tolist()
            cum = self._cum[key] = list(accumulate(q))
        return min(bisect_right(cum, self.rng.random() * cum[-1]), len(cum) - 1)

    def _actions(self, node: Node, orig: Segment, t: int) -> list[int]:
        state, obs = node.seg.states[-1], node.seg.obs[-1]
        p = self.model.probs(obs)
        depth = len(node.seg)
        banned = orig.states[t + 1] if depth == 0 else None  # the root must reach another state
        best: dict = {}  # next state -> the most likely action reaching it
        for a in range(len(p)):
            nxt = step_cached(self.env, self.model, state, obs, a)[1]
            if nxt != banned and (nxt not in best or p[a] > p[best[nxt]]):
                best[nxt] = a
        distinct = sorted(best.values())
        thr, acts = self.threshold, []
        while len(acts) < min(3, len(distinct)) and thr > 1e-12:
            acts = [a for a in distinct if p[a] > thr]
            thr *= 0.1
        if len(acts) < min(3, len(distinct)):
            acts = distinct
        if depth > 0:
            acts.append(END)
        return acts

    def _terminal(self, node: Node, max_len: int) -> bool:
        return node.action == END or node.done or len(node.seg) >= max_len

    def _child(self, node: Node, a: int) -> Node:
        if a == END:
            child = Node(node, END, node.seg, node.done)
        else:
            seg = _copy(node.seg)
            done = extend(self.env, self.model, seg, a)
            child = Node(node, a, seg, done)
        node.children[a] = child
        return child

    def _expand(self, node: Node, orig: Segment, t: int) -> Node:
        if node.untried is None:
            node.untried = self._actions(node, orig, t)
            if self.branching_heuristic:
                node.h = {}
                for a in node.untried:
                    if a == END:
                        node.h[a] = self._value(orig, t, node.seg)
                    else:
                        seg = _copy(node.seg)
                        extend(self.env, self.model, seg, a)
                        node.h[a] = self._value(orig, t, seg)
                node.untried.sort(key=lambda a: node.h[a])  # best last (popped first)
            else:
                self.rng.shuffle(node.untried)
        return self._child(node, node.untried.pop())

    def _simulate(self, node: Node, orig: Segment, t: int, max_len: int) -> float:
        if node.action == END or node.done or len(node.seg) >= max_len:
            return self._value(orig, t, node.seg)
        seg, rng = _copy(node.seg), self.rng
        done = False
        n_actions = self.env.action_space.n
        while not done and len(seg) < max_len and rng.random() >= self.end_prob:
            if self.policy_rollouts:
                a = self._rollout_action(seg.obs[-1])
            else:
                a = int(rng.integers(n_actions))
            done = extend(self.env, self.model, seg, a)
        return self._value(orig, t, seg)

    def _select(self, node: Node) -> Node:
        log_n = math.log(max(node.n, 1))
        best, best_v = None, -math.inf
        for child in node.children.values():
            v = child.q + self.c_uct * math.sqrt(log_n / child.n) if child.n else math.inf
            if v > best_v:
                best, best_v = child, v
        return best

    def search_from(self, orig: Segment, t: int) -> Segment | None:
        """Grow the counterfactual from orig.states[t] by repeated MCTS + commit; returns it (None when
        no action leads to a state other than the original's next state)."""
        T = len(orig)
        max_len = T - t if self.max_len is None else min(self.max_len, T - t)
        root = Node(None, None, Segment([orig.states[t]], [orig.obs[t]]), False)
        if not self._actions(root, orig, t):
            return None  # every action reaches the original's next state
        while not self._terminal(root, max_len):
            for _ in range(self.n_iter):
                node = root
                while (not self._terminal(node, max_len) and node.untried is not None
                       and not node.untried and node.children):
                    node = self._select(node)
                if not self._terminal(node, max_len):
                    node = self._expand(node, orig, t)
                value = self._simulate(node, orig, t, max_len)
                while node is not None:  # backup (incremental mean) up to the current root
                    node.n += 1
                    node.q += (value - node.q) / node.n
                    node = node.parent if node is not root else None
            best = max(root.children.values(), key=lambda c: c.q)
            best.parent = None
            root = best
        return root.seg

    def start_points(self, orig: Segment) -> list[int]:
        """The ``n_starts`` lowest-entropy steps among t < len(orig) - exclude_last, in time order."""
        T = len(orig)
        last = max(T - self.exclude_last, 1)
        importance = np.array([-self.model.entropy(orig.obs[t]) for t in range(last)])
        return sorted(int(s) for s in np.argsort(-importance, kind="stable")[: self.n_starts])

    def generate_one(self, orig: Segment, episode: int = -1) -> CTE | None:
        self._memo: dict = {}  # valid for one original and one diversity history
        if len(getattr(self, "_cum", ())) > 200_000 or not hasattr(self, "_cum"):
            self._cum: dict = {}
        best = None
        for t in self.start_points(orig):
            cf = self.search_from(orig, t)
            if cf is None:
                continue
            cte = CTE(t, orig.cut(t, len(cf)), cf, self.name, episode=episode)
            self.scorer.score(cte)
            if best is None or cte.quality > best.quality:
                best = cte
        return best
