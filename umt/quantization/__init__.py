"""Tokens of the latent: residual vector quantisation and the independence of its codebooks."""
