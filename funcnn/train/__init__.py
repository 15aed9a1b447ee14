"""Training: compiled steps, the lectures' optimiser recipes, the `fit` loop with checkpoints and resuming, and `run`,
the main job (`funcnn train`)."""

from .batched import (ReplicaResult, fit_replicas, init_replica_optimizer, init_replicas, make_replica_train_step,
                      per_example_grads, replica)
from .fit import FitResult, fit
from .loop import TrainingDiverged
from .parallel import data_mesh, make_data_parallel_train_step, shard_batch
from .pipeline import RunConfig, RunError, RunResult, run
from . import precision
from .precision import Policy, loss_scale, loss_scaled, mixed_precision, with_precision
from .settings import FitSettings, SettingError
from .recipes import RECIPES, Plateau, adam, alexnet_recipe, get_learning_rate, resnet_recipe, set_learning_rate, sgd
from .steps import classification_loss, evaluate, logits_of, make_eval_step, make_train_step, predict

__all__ = [
    "run", "RunConfig", "RunResult", "RunError",
    "fit", "FitResult", "FitSettings", "SettingError", "TrainingDiverged",
    "fit_replicas", "ReplicaResult", "replica", "init_replicas", "init_replica_optimizer", "make_replica_train_step",
    "per_example_grads",
    "data_mesh", "make_data_parallel_train_step", "shard_batch",
    "precision", "Policy", "loss_scale", "loss_scaled", "mixed_precision", "with_precision",
    "RECIPES", "Plateau", "adam", "sgd", "alexnet_recipe", "resnet_recipe", "get_learning_rate", "set_learning_rate",
    "classification_loss", "evaluate", "logits_of", "make_eval_step", "make_train_step", "predict",
]
