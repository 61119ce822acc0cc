"""SB3's ``EvalCallback``, extended to evaluate the model that training ends with."""

from stable_baselines3.common.callbacks import EvalCallback


class FinalEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` that also evaluates the final model when training ends.

    ``EvalCallback`` evaluates every ``eval_freq`` calls, during rollout collection, so the model that
    training ends with is usually never evaluated. The extra evaluation goes through ``EvalCallback``'s own
    code, so ``evaluations.npz`` keeps its format, with one more row at the final ``num_timesteps``.
    """

    def _on_training_end(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.evaluations_timesteps and self.evaluations_timesteps[-1] == self.num_timesteps:
            return
        every = self.eval_freq
        self.eval_freq = 1  # makes the `n_calls % eval_freq == 0` test of `_on_step` true once
        try:
            self._on_step()
        finally:
            self.eval_freq = every
