from ..files import Kind, ModelFile
from .attention import (DEFAULT_CHUNK_BYTES, attention_chunk, dense_masked_attention, feature_holes,
                        feature_validity, masked_attention, patch_match)
from .loading import (MARKER_KEYS, GlobalRestorationNetworks, build, build_decoder, build_encoder, build_mapping,
                      load_strictly, mapping_class)
from .networks import (MODES, SCALE, MaskedNonLocalBlock, Mode, PatchAttention, PatchAttentionMapping,
                       QualityMapping, ResnetBlock, ScratchMapping, VAEDecoder, VAEEncoder)

FILE = ModelFile("global restoration network (BOPBTL)", Kind.GLOBAL_RESTORATION, marker_keys=MARKER_KEYS,
                 any_marker=True)

__all__ = ["DEFAULT_CHUNK_BYTES", "FILE", "MARKER_KEYS", "MODES", "SCALE", "GlobalRestorationNetworks",
           "MaskedNonLocalBlock", "Mode", "PatchAttention", "PatchAttentionMapping", "QualityMapping", "ResnetBlock",
           "ScratchMapping", "VAEDecoder", "VAEEncoder", "attention_chunk", "build", "build_decoder",
           "build_encoder", "build_mapping", "dense_masked_attention", "feature_holes", "feature_validity",
           "load_strictly", "mapping_class", "masked_attention", "patch_match"]
