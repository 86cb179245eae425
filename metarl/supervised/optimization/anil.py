"""ANIL, "Almost No Inner Loop" (Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature
Reuse? Towards Understanding the Effectiveness of MAML", ICLR 2020), for sine and Omniglot.

θ = (φ, w): the body φ (every layer but the last) and the head w (the last linear layer; sine's
MLP: ``layers.{L-1}``, Omniglot's ConvNet: ``head``). MAML's inner loop runs on the head only;
the body is meta-learned in the outer loop alone. The body's features do not change in the
inner loop, so they are computed once per task::

    z_i = f_φ(x_i)                                   x_i [B, n, ...] -> z_i [B, n, d]
    w'_i = w − α ∇_w L(w; z_i^support, y_i^support)  (num_steps times; w [out, d] -> [B, out, d])
    (φ, w) ← Adam step on  (1/B) Σ_i L(w'_i; z_i^query, y_i^query)

The head of every task adapts at once with batched matmuls, and the meta-gradient is second
order through the head's inner steps (``first_order`` false), which costs little: the Hessian
terms are those of one linear layer.

Why ANIL among MAML's variants (rather than, say, Meta-SGD, which adds a learned step size per
parameter): it is the cheap one, an inner loop on about 1% of Omniglot's parameters with no
backward pass through the body in the inner loop, and it tests the paper's feature-reuse
hypothesis: if ANIL matches MAML, MAML's adaptation mostly reuses features rather than learning
new ones. Evaluation adapts the head only as well (``ANILLearner.start``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metarl.core import mlp
from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.supervised.omniglot.model import ConvNet, grouped_features, task_slices
from metarl.supervised.problem import FewShotProblem, Start
from metarl.supervised.sine.model import MLP
from metarl.supervised.trainer import MAMLConfig, MetaLearner

#: ``task_loss(outputs [B, n, ...], targets [B, n, ...]) -> [B]``.
TaskLoss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class BodyHead:
    """A model split into its body and its linear head.

    Attributes:
        weight, bias: the head's parameter names (``[out, d]``, ``[out]``).
        features: ``features(body, x [B, n, ...]) -> z [B, n, d]``: the body with shared
            parameters ``body`` (every parameter but the head's) on each task's inputs.
    """

    weight: str
    bias: str
    features: Callable[[Params, Tensor], Tensor]

    def split(self, params: Params) -> tuple[Params, Params]:
        """``params`` as (body, head)."""
        head_names = (self.weight, self.bias)
        return ({k: v for k, v in params.items() if k not in head_names},
                {k: params[k] for k in head_names})


def head_forward(head: Params, z: Tensor, split: BodyHead) -> Tensor:
    """Each task's head on its features: ``weight [B, out, d]``, ``bias [B, out]``,
    ``z [B, n, d]`` -> ``[B, n, out]``."""
    return torch.bmm(z, head[split.weight].transpose(1, 2)) + head[split.bias].unsqueeze(1)


def body_head(model: nn.Module) -> BodyHead:
    """The body/head split of sine's ``MLP`` (head: its last layer) or Omniglot's ``ConvNet``
    (head: ``head``); TypeError for another model."""
    if isinstance(model, MLP):
        last = len(model.layers) - 1

        def mlp_features(body: Params, x: Tensor) -> Tensor:
            layers = [(body[f"layers.{i}.weight"], body[f"layers.{i}.bias"]) for i in range(last)]
            return model.activation(mlp.forward(layers, x, model.activation)) if layers else x

        return BodyHead(f"layers.{last}.weight", f"layers.{last}.bias", mlp_features)
    if isinstance(model, ConvNet):

        def conv_features(body: Params, x: Tensor) -> Tensor:
            # each task's batch norm statistics are its own: the tasks' groups, as task_forward
            return torch.cat([
                grouped_features(stack_params(body, part.stop - part.start), x[part],
                                 num_blocks=model.num_blocks)
                for part in task_slices(x.shape[0], x.device)])

        return BodyHead("head.weight", "head.bias", conv_features)
    raise TypeError(f"ANIL splits {MLP.__name__} (sine) and {ConvNet.__name__} (omniglot) into "
                    f"body and head; got a {type(model).__name__}")


def adapt_head(split: BodyHead, task_loss: TaskLoss, head: Params, z: Tensor, y: Tensor, *,
               num_steps: int, step_size: float, first_order: bool) -> Params:
    """w'_i: ``num_steps`` inner steps of the shared head ``head`` on each task's support
    features ``z [B, n, d]`` and targets ``y [B, n, ...]``; returns ``{name: [B, ...]}``, in
    the graph of ``head`` and ``z`` (unless ``first_order``)."""
    return adapt(lambda p, d: task_loss(head_forward(p, d[0], split), d[1]).sum(),
                 stack_params(head, z.shape[0]), (z, y), num_steps=num_steps,
                 step_size=step_size, first_order=first_order)


def anil_query_outputs(split: BodyHead, task_loss: TaskLoss, params: Params,
                       support: tuple[Tensor, Tensor], query_x: Tensor, *, num_steps: int,
                       step_size: float, first_order: bool = False) -> Tensor:
    """The query outputs ``[B, n_q, out]`` of each task's adapted head on its body features:
    ANIL's forward, differentiable in every parameter of ``params`` (body and head)."""
    body, head = split.split(params)
    adapted = adapt_head(split, task_loss, head, split.features(body, support[0]), support[1],
                         num_steps=num_steps, step_size=step_size, first_order=first_order)
    return head_forward(adapted, split.features(body, query_x), split)


class FrozenBody:
    """A ``TaskModel`` of the head alone: ``task_forward(head [B, ...], x)`` runs the frozen
    body (no gradient) then each task's head; what ANIL's held-out curves fine-tune."""

    def __init__(self, split: BodyHead, body: Params):
        self.split = split
        self.body = {k: v.detach() for k, v in body.items()}

    def task_forward(self, head: Params, x: Tensor) -> Tensor:
        with torch.no_grad():
            z = self.split.features(self.body, x)
        return head_forward(head, z, self.split)


class ANILLearner(MetaLearner):
    """ANIL on a few-shot problem: ``MetaLearner`` with the inner loop on the head only, in
    training and in every held-out curve."""

    algo = "anil"

    def __init__(self, problem: FewShotProblem, config: MAMLConfig):
        super().__init__(problem, config)
        self.split = body_head(self.model)

    def meta_loss(self, support: tuple[Tensor, Tensor], query: tuple[Tensor, Tensor]
                  ) -> tuple[Tensor, Tensor]:
        """Mean query loss after the head's adaptation, and the mean query score."""
        config = self.config
        outputs = anil_query_outputs(self.split, self.problem.task_loss,
                                     parameters_of(self.model), support, query[0],
                                     num_steps=config.num_steps, step_size=config.fast_lr,
                                     first_order=config.first_order)
        with torch.no_grad():
            scores = self.problem.task_score(outputs, query[1])
        return self.problem.task_loss(outputs, query[1]).mean(), scores.mean()

    def start(self) -> Start:
        """The head's parameters, run by the frozen body."""
        body, head = self.split.split(parameters_of(self.model))
        return Start(FrozenBody(self.split, body), head)
