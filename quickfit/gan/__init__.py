"""GANs on the Learner: the networks (models.py), the loss (loss.py), which network trains next
(switchers.py), the step that alternates them (step.py), callbacks (callbacks.py), noise data (data.py)
and the learner with its export configuration (learner.py). Not vision-only: any generator and critic
train this way.

    from quickfit.gan import GANLearner, basic_generator, gan_critic, noise_dls
"""

from quickfit.gan.callbacks import GANSamples, GeneratorEMA
from quickfit.gan.data import noise_dls
from quickfit.gan.learner import GANConfig, GANLearner, GANTask
from quickfit.gan.loss import GANLoss
from quickfit.gan.models import GANModule, basic_generator, gan_critic
from quickfit.gan.step import AdamNoMomentum, GANStep
from quickfit.gan.switchers import AdaptiveGANSwitcher, FixedGANSwitcher, GANSwitcher

__all__ = [
    "AdamNoMomentum",
    "AdaptiveGANSwitcher",
    "FixedGANSwitcher",
    "GANConfig",
    "GANLearner",
    "GANLoss",
    "GANModule",
    "GANSamples",
    "GANStep",
    "GANSwitcher",
    "GANTask",
    "GeneratorEMA",
    "basic_generator",
    "gan_critic",
    "noise_dls",
]
