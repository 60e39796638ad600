"""Training inside the pack: fine-tuning a fast face restorer on an archive's own faces and their
SSDiff restorations or pseudo-targets (Kuai et al., WACV 2025). `recipes` holds what each
architecture trains and on which loss (one table), `losses` the loss terms, `objectives` a step's
loss for each recipe, `pairs` the training pairs, `fine_tune` the loop. Plain torch: the node
(nodes/fine_tune.py) brings the images in and reports progress."""
