"""The widget values the tests give SSDiff's two stages (the paper's, on the learned-variance
DDPM step), in one place so that a new node input is added once. The one-stop nodes also take
`ONE_STOP_SETTINGS` (besides seed and steps); the SAMPLER nodes do not."""
from __future__ import annotations

PSEUDO_REFERENCE_SETTINGS = {"scale": 0.001, "repeats": 1, "s_start": 1.0, "s_end": 0.7,
                             "base_sampler": "ddpm_learned_variance", "latent_guidance": "vae_decoder",
                             "reference_compat": False, "identity_weight": 2000.0}
SELECTIVE_SETTINGS = {"t1": 0.4, "scale": 0.0035, "structure_weight": 1.0, "reference_weight": 100.0,
                      "colour_weight": 20.0, "repeats": 1, "s_start": 1.0, "s_end": 0.7,
                      "base_sampler": "ddpm_learned_variance", "latent_guidance": "vae_decoder",
                      "reference_compat": False, "identity_weight": 2000.0}
ONE_STOP_SETTINGS = {"cfg": 1.0}
