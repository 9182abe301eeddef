"""Networks, model registry, inference, patient voting and Grad-CAM. Never imports Qt."""
