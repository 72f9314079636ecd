"""Training (umt.training): every domain's decoder, the shared encoder and the domain-confusion classifier,
trained together in one process (or one process per GPU under torchrun).

One step, as in the paper:
  1. encode the augmented input of a batch of every domain; each decoder reconstructs its
     own domain's clean crop (teacher forcing, UMT.forward) -> a loss per domain (umt.losses);
  2. the classifier takes a step on the detached latents (learn to tell the domains apart);
  3. encoder and decoders take a step on  sum(losses) - lambda * CE_classifier,  the classifier
     held fixed: the encoder is rewarded for latents the classifier cannot place (every term
     weighted by TrainConfig.loss_weights).
In the spectral recipe (the default) the losses are the L1 of each frame network's predicted
spectrum (--batch-size frame crops of --crop samples per domain) and the cross-entropy of each
renderer on the real spectrum of its domain (--render-batch-size crops of --render-crop); a
batch size of 0 leaves that part out, so the parts can also be trained one after the other.
With --add-domain, the encoder and the existing decoders are frozen and only the new
decoder trains (step 1 alone); with --from alone, every decoder (and a tokenizer, if the
model gets one: `umt tokenizer train`) trains on the frozen encoder. A model with a tokenizer
adds its commitment loss and, weighted by --mmd-weight (loss weight "mmd"), the independence
loss between its codebooks to step 3.

Distributed: torchrun starts one process per GPU; each holds the whole model (the encoder
and every decoder) and the classifier, wrapped in DDP, and takes its slice of every global
batch by index (see umt.data.crops), so N processes with batch B train exactly like one
process with batch N*B.
"""

# config: settings and run planning; step: one adversarial step; solver: the loop every
# training here runs on (checkpoints, resume, stop); loop: the model's run on it, and its log.
# What a recipe trains on is umt.recipes; the loss terms, umt.losses; validation, umt.validation.
