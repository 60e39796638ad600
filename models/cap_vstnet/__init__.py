from .revresnet import MARKER_KEYS, RevResNet, RevResNetConfig, unwrap_checkpoint

__all__ = ["MARKER_KEYS", "RevResNet", "RevResNetConfig", "unwrap_checkpoint"]
