"""The ``ensemble`` encoder: one tagger whose scores average those of member encoders.

Any registered encoder can be a member, an external plugin's included. Each member trains
on the same rows (and sees the same validation rows, for early stopping); their
probabilities are averaged with weights fitted on the validation rows. A small validation
set makes fitted weights noisy, so they are kept only where choosing them beats equal
weights out of fold: weights chosen on four fifths of the validation rows are scored on
the fifth left out, in turn, against equal weights on the same rows. Otherwise the
members count equally. The criterion is micro-averaged average precision: it judges how
well the mix ranks the true labels first, not its scale, since the decision rule fits its
thresholds afterwards. (Log loss, the first criterion, preferred a badly ranking but
well-calibrated BERT to TF-IDF, whose balanced class weights inflate its probabilities, on
English names: docs/benchmarks.md.)

Ranking better is not deciding better: a blend's probabilities can sit on another scale
than its best member's, so that the same threshold leaves more names without a label
(TF-IDF's low probabilities pulled a TF-IDF + BERT blend 0.6 point under its BERT member
on DuEE at 1,000 rows, though it ranked better). So the weights then face a second check,
on the figure the user trains for (``check``, micro F1 by default): the blend, its weights
chosen out of fold, decides the validation rows with the taxonomy's default rule, and where
a member alone decides them better in 90 % of paired bootstrap resamples, that member gets
all the weight.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tagger_core import (
    LOWER_IS_BETTER,
    OBJECTIVES,
    Encoder,
    ModelError,
    ParamRange,
    PluginError,
    Scores,
    Taxonomy,
    default_rule_name,
    hookimpl,
    make_encoder,
    make_rule,
    paired_bootstrap,
    quick_figures,
)

log = logging.getLogger("tagger")

STATE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
GUARD_FOLDS = 5
# A member replaces the blend only where it decides the validation rows better in at least
# this share of paired bootstrap resamples (the bar training's rule choice uses): on a few
# dozen rows the two differ by noise, and the blend, which the user asked for, stays.
CHECK_CONFIDENCE = 0.9
_EPS = 1e-6


class MemberSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


def _members_from(value: Any) -> Any:
    """``"tfidf,bert"``, a YAML/JSON file holding a list of members, or the list itself."""
    if not isinstance(value, str):
        return value
    if value.endswith((".yaml", ".yml", ".json")):
        import yaml

        path = Path(value).expanduser()
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read the member list {path}: {exc}") from None
        return loaded.get("members") if isinstance(loaded, dict) else loaded
    return [{"name": part.strip()} for part in value.split(",") if part.strip()]


class EnsembleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[MemberSpec] = Field(
        default_factory=lambda: [MemberSpec(name="tfidf"), MemberSpec(name="bert")],
        description="member encoders: 'tfidf,bert', or a YAML file listing {name, params}",
    )
    weights: Literal["fit", "equal"] | list[float] = Field(
        default="fit",
        description="fit: on the validation rows, kept only where better than equal out of "
        "fold; equal; or one weight per member",
    )
    step: float = Field(default=0.1, gt=0, le=0.5, description="grid step of the fitted weights")
    criterion: Literal["average_precision", "log_loss"] = Field(
        default="average_precision", description="what the fitted weights maximise"
    )
    check: str | None = Field(
        default=None,
        description="the validation figure on which the blend must decide at least as well "
        "as each member alone, else the best member decides alone; none: no check; unset: "
        "the training objective (tagger train --objective), else micro_f1",
    )
    model: str | None = Field(
        default=None, description="pretrained model for the members that take one (--model)"
    )
    threads: int | None = Field(
        default=None, ge=1, le=1024, description="CPU threads for the members that take them"
    )

    @field_validator("check")
    @classmethod
    def _known_check(cls, value: str | None) -> str | None:
        if value is not None and value not in ("none", *OBJECTIVES):
            raise ValueError(f"'{value}' is not one of: none, {', '.join(OBJECTIVES)}")
        return value

    @field_validator("members", mode="before")
    @classmethod
    def _parse_members(cls, value: Any) -> Any:
        members = _members_from(value)
        if isinstance(members, list) and len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        return members


def member_names(specs: list[MemberSpec]) -> list[str]:
    """Display names: the encoder's name, numbered where it repeats (bert, bert-2)."""
    seen: dict[str, int] = {}
    names = []
    for spec in specs:
        seen[spec.name] = seen.get(spec.name, 0) + 1
        names.append(spec.name if seen[spec.name] == 1 else f"{spec.name}-{seen[spec.name]}")
    return names


def probabilities(logits: np.ndarray, mode: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if mode == "multi-label":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _mix(probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return np.asarray(sum(w * p for w, p in zip(weights, probs, strict=True)))


def combined_logits(probs: list[np.ndarray], weights: np.ndarray, mode: str) -> np.ndarray:
    """The weighted mean of the members' probabilities, back in logit space."""
    mean = np.clip(_mix(probs, weights), _EPS, 1 - _EPS)
    if mode == "multi-label":
        return np.log(mean / (1 - mean)).astype(np.float32)
    return np.log(mean).astype(np.float32)


def row_log_loss(prob: np.ndarray, truth: np.ndarray, mode: str) -> np.ndarray:
    """Per row: mean binary cross-entropy over labels, or −log p of the true class."""
    p = np.clip(prob, _EPS, 1 - _EPS)
    if mode == "multi-label":
        return -(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean(axis=1)
    return -np.log((p * truth).sum(axis=1))


def weight_grid(members: int, step: float) -> np.ndarray:
    """Every weight vector on the simplex with the given step."""
    units = round(1 / step)
    points = [
        combo
        for combo in itertools.product(range(units + 1), repeat=members - 1)
        if sum(combo) <= units
    ]
    return np.array([[*c, units - sum(c)] for c in points], dtype=np.float64) / units


def criterion_score(criterion: str, prob: np.ndarray, truth: np.ndarray, mode: str) -> float:
    """Higher is better. ``average_precision``: micro-averaged over every (row, label)
    pair, so it rewards ranking the true labels first, whatever the scale — the decision
    rule fits its thresholds afterwards, and a member whose probabilities are badly
    calibrated (TF-IDF with balanced class weights) is judged by its ranking. ``log_loss``
    rewards calibration too."""
    if criterion == "log_loss":
        return -float(row_log_loss(prob, truth, mode).mean())
    from sklearn.metrics import average_precision_score

    if not truth.any():
        return 0.0
    return float(average_precision_score(truth, prob, average="micro"))


def fit_weights(
    probs: list[np.ndarray],
    truth: np.ndarray,
    mode: str,
    step: float,
    seed: int = 0,
    criterion: str = "average_precision",
) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    """Weights for ``probs`` (each member's validation probabilities), a report, and the
    blend each row gets from weights chosen without it (for checks that must not see their
    own fit). The weights are the grid's best on every row where choosing it beats equal
    weights out of fold (chosen on four folds of the rows, scored on the fifth, in turn);
    else equal weights, and each row's blend is the equal mix."""
    m, n = len(probs), len(truth)
    equal = np.full(m, 1.0 / m)
    grid = weight_grid(m, step)
    mixes = [_mix(probs, g) for g in grid]

    distance = np.abs(grid - equal).sum(axis=1)

    def best(rows: np.ndarray) -> int:
        """The best grid point; among ties, the nearest to equal weights."""
        scores = np.array(
            [criterion_score(criterion, mix[rows], truth[rows], mode) for mix in mixes]
        )
        tied = np.flatnonzero(scores >= scores.max() - 1e-12)
        return int(tied[np.argmin(distance[tied])])

    every = np.arange(n)
    best_all = grid[best(every)]
    report: dict[str, Any] = {
        "criterion": criterion,
        "grid_points": len(grid),
        "member_scores": [round(criterion_score(criterion, p, truth, mode), 6) for p in probs],
        "best_weights": [round(float(w), 4) for w in best_all],
    }
    equal_mix = _mix(probs, equal)
    if n < 2 * GUARD_FOLDS:
        reason = f"{n} validation rows: too few"
        return equal, {**report, "chosen": "equal", "reason": reason}, equal_mix
    folds = np.arange(n) % GUARD_FOLDS
    np.random.default_rng(seed).shuffle(folds)
    fitted, equal_scores = [], []
    held_out_mix = np.empty_like(equal_mix)
    for fold in range(GUARD_FOLDS):
        held = every[folds == fold]
        chosen = best(every[folds != fold])
        held_out_mix[held] = mixes[chosen][held]
        fitted.append(criterion_score(criterion, mixes[chosen][held], truth[held], mode))
        equal_scores.append(criterion_score(criterion, equal_mix[held], truth[held], mode))
    fitted_score, equal_score = float(np.mean(fitted)), float(np.mean(equal_scores))
    report.update(
        {"out_of_fold_score": round(fitted_score, 6), "equal_score": round(equal_score, 6)}
    )
    if fitted_score > equal_score:
        return best_all, {**report, "chosen": "fitted"}, held_out_mix
    reason = "fitted weights no better out of fold"
    return equal, {**report, "chosen": "equal", "reason": reason}, equal_mix


def decision_check(
    blend: np.ndarray,
    probs: list[np.ndarray],
    truth: np.ndarray,
    taxonomy: Taxonomy,
    figure: str,
    names: list[str],
    seed: int = 0,
) -> tuple[int | None, dict[str, Any]]:
    """The member that decides the validation rows better on ``figure`` than the blend
    (``blend``: each row's mix from weights chosen without it) in at least
    :data:`CHECK_CONFIDENCE` of paired bootstrap resamples, or None where none does;
    decisions by the taxonomy's default rule, unfitted, as a new tagger makes them; and a
    report."""
    rule = make_rule(default_rule_name(taxonomy.mode))
    truth = np.asarray(truth) > 0.5

    def decide(prob: np.ndarray) -> np.ndarray:
        logits = combined_logits([prob], np.ones(1), taxonomy.mode)
        return np.asarray(rule.decisions(Scores(logits, taxonomy.mode), taxonomy))

    blend_pred = decide(blend)
    member_preds = [decide(p) for p in probs]
    member_scores = [float(quick_figures(truth, pred)[figure]) for pred in member_preds]
    best = int(np.argmin(member_scores) if figure in LOWER_IS_BETTER else np.argmax(member_scores))
    gain, share = paired_bootstrap(truth, member_preds[best], blend_pred, figure, seed)
    report: dict[str, Any] = {
        "figure": figure,
        "rule": rule.describe(),
        "blend": round(float(quick_figures(truth, blend_pred)[figure]), 6),
        "members": {n: round(s, 6) for n, s in zip(names, member_scores, strict=True)},
        "best_member_better_in": round(share, 4),
    }
    if gain > 0 and share >= CHECK_CONFIDENCE:
        return best, {**report, "chosen": names[best]}
    return None, {**report, "chosen": "blend"}


class EnsembleEncoder(Encoder[EnsembleParams]):
    """Averages the probabilities of member encoders with held-out weights."""

    name = "ensemble"
    learns_from_validation = True  # its weights, and its members' early stopping
    description = "Weighted mean of member encoders' probabilities (default tfidf + bert)."
    model_param = "model"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.members and any(s.name == self.name for s in self.params.members):
            raise PluginError("encoder 'ensemble': an ensemble cannot be its own member")
        self.specs = [self._resolved(spec) for spec in self.params.members]
        self.names = member_names(self.specs)
        weights = self.params.weights
        if isinstance(weights, list) and (
            len(weights) != len(self.specs) or min(weights) < 0 or sum(weights) <= 0
        ):
            raise PluginError(
                f"encoder 'ensemble': parameter 'weights': {len(self.specs)} non-negative "
                "weights, not all 0, one per member"
            )
        self.encoders: list[Encoder[Any]] = [make_encoder(s.name, s.params) for s in self.specs]
        self.uses_all_cpus = any(e.uses_all_cpus for e in self.encoders)  # type: ignore[misc]
        self.weights = np.full(len(self.specs), 1.0 / len(self.specs))
        self.fit_report: dict[str, Any] = {}
        self.mode = "multi-label"

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        """Every member's space, as ``MEMBER.PARAM`` (member names as :func:`member_names`
        gives them), and the choice between fitted and equal weights."""
        specs = EnsembleParams(**params).members
        space: dict[str, ParamRange] = {"weights": ParamRange(choices=("fit", "equal"))}
        for name, spec in zip(member_names(specs), specs, strict=True):
            member = type(make_encoder(spec.name, spec.params))
            for key, where in member.search_space(spec.params).items():
                space[f"{name}.{key}"] = where
        return space

    @classmethod
    def with_values(cls, params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        specs = EnsembleParams(**params).members
        names = member_names(specs)
        members = [spec.model_dump() for spec in specs]
        own = {}
        for key, value in values.items():
            name, dot, member_key = key.partition(".")
            if not dot:
                own[key] = value
                continue
            if name not in names:
                raise PluginError(f"encoder 'ensemble': no member '{name}' (members: {names})")
            members[names.index(name)]["params"][member_key] = value
        return {**params, **own, "members": members}

    def _resolved(self, spec: MemberSpec) -> MemberSpec:
        """The member's params with the ensemble's model and threads where it takes them."""
        encoder = make_encoder(spec.name, spec.params)  # unknown name/param: fails here
        params = dict(spec.params)
        key = type(encoder).model_param
        if self.params.model is not None and key is not None:
            params.setdefault(key, self.params.model)
        if self.params.threads is not None and "threads" in type(encoder).Params.model_fields:
            params.setdefault("threads", self.params.threads)
        return MemberSpec(name=spec.name, params=params)

    def is_primary(self) -> bool:
        return all(e.is_primary() for e in self.encoders)

    def members(self) -> dict[str, Encoder[Any]]:
        return dict(zip(self.names, self.encoders, strict=True))

    def aim_at(self, objective: str | None) -> None:
        """The check, and each member's own validation (bert's early stopping), measure
        ``objective`` where their parameters name no other figure."""
        super().aim_at(objective)
        for encoder in self.encoders:
            encoder.aim_at(objective)

    def check_figure(self) -> str:
        return self.params.check or self.objective or "micro_f1"

    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        self.mode = taxonomy.mode
        for i, (name, encoder) in enumerate(self.members().items(), start=1):
            log.info("ensemble: training member %d/%d (%s)", i, len(self.encoders), name)
            encoder.fit(texts, targets, taxonomy, valid=valid, seed=seed)
        weights = self.params.weights
        if isinstance(weights, list):
            self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
            self.fit_report = {"chosen": "given"}
        elif weights == "equal" or valid is None or not len(valid[0]):
            self.weights = np.full(len(self.encoders), 1.0 / len(self.encoders))
            reason = "asked" if weights == "equal" else "no validation rows"
            self.fit_report = {"chosen": "equal", "reason": reason}
        else:
            probs = [probabilities(e.logits(valid[0]), self.mode) for e in self.encoders]
            truth = np.asarray(valid[1], dtype=np.float64)
            self.weights, self.fit_report, held_out = fit_weights(
                probs, truth, self.mode, self.params.step, seed, self.params.criterion
            )
            if self.check_figure() != "none":
                self._check_decisions(held_out, probs, truth, taxonomy, seed)
        log.info(
            "ensemble weights: %s (%s)",
            ", ".join(f"{n} {w:.2f}" for n, w in zip(self.names, self.weights, strict=True)),
            self.fit_report.get("chosen"),
        )

    def _check_decisions(
        self,
        held_out: np.ndarray,
        probs: list[np.ndarray],
        truth: np.ndarray,
        taxonomy: Taxonomy,
        seed: int,
    ) -> None:
        """A member that decides better alone than the blend gets all the weight."""
        check = self.check_figure()
        winner, report = decision_check(held_out, probs, truth, taxonomy, check, self.names, seed)
        self.fit_report["check"] = report
        if winner is not None:
            self.weights = np.eye(len(self.encoders))[winner]
            log.info(
                "ensemble: %s alone decides the validation rows better (%s %.4f, blend %.4f; "
                "in %.0f%% of resamples)",
                self.names[winner],
                check,
                report["members"][self.names[winner]],
                report["blend"],
                100 * report["best_member_better_in"],
            )

    def combination(self) -> str:
        check = self.fit_report.get("check", {})
        if check.get("chosen", "blend") != "blend":
            name = check["chosen"]
            return (
                f"{name} alone: it decided the validation rows better than the blend "
                f"({check['figure']} {check['members'][name]:.3f} against {check['blend']:.3f}, "
                f"in {check['best_member_better_in']:.0%} of resamples)"
            )
        weights = " + ".join(
            f"{name} {w:.2f}" for name, w in zip(self.names, self.weights, strict=True)
        )
        return f"{weights} ({self.fit_report.get('chosen', 'saved')} weights)"

    def logits(self, texts: list[str]) -> np.ndarray:
        """The blend; a member weighted 0 is not run."""
        used = np.flatnonzero(self.weights > 0)
        return self._blend([self.encoders[i].logits(texts) for i in used], used)

    def combine(self, member_logits: list[np.ndarray]) -> np.ndarray:
        return self._blend(member_logits, np.arange(len(self.encoders)))

    def _blend(self, member_logits: list[np.ndarray], members: np.ndarray) -> np.ndarray:
        """The weighted mean of ``members``' probabilities (their logits in that order)."""
        probs = [probabilities(logits, self.mode) for logits in member_logits]
        return combined_logits(probs, self.weights[members], self.mode)

    def save(self, directory: Path) -> None:
        folders = []
        for i, (name, encoder) in enumerate(self.members().items()):
            folder = directory / MEMBERS_DIR / f"{i}-{name}"
            folder.mkdir(parents=True)
            encoder.save(folder)
            folders.append(folder.relative_to(directory).as_posix())
        state = {
            "mode": self.mode,
            "members": [
                {"name": s.name, "params": s.params, "folder": f}
                for s, f in zip(self.specs, folders, strict=True)
            ],
            "weights": [float(w) for w in self.weights],
            "fit": self.fit_report,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        file = directory / STATE_FILE
        try:
            state = json.loads(file.read_text(encoding="utf-8"))
            members = [(m["name"], m["params"], m["folder"]) for m in state["members"]]
            weights = np.asarray(state["weights"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"ensemble state is missing or corrupt: {exc}", file=file) from None
        if len(members) != len(self.encoders) or weights.shape != (len(members),):
            raise ModelError("lists other members than the manifest", file=file)
        for i, (name, params, folder) in enumerate(members):
            encoder = make_encoder(name, params)
            encoder.load(directory / folder, taxonomy)
            self.encoders[i] = encoder
        self.weights, self.mode = weights, taxonomy.mode
        self.fit_report = dict(state.get("fit", {}))


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(EnsembleEncoder)
