"""The layers and networks the model is assembled from (umt.model.UMT): layers.py, encoder.py,
wavenet.py (the WaveNet decoder), spectral_decoder.py, classifier.py."""
