"""The priors' processing, plain torch (and facexlib, OpenCV): faces found, aligned, cropped and
pasted back; scratch detection; face parsing in CelebAMask-HQ labels; the coarse restoration;
CAP-VSTNet's colour transfer. The networks themselves are in models/."""
