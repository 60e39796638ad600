from ..files import Kind, ModelFile
from .attention import (DEFAULT_CHUNK_BYTES, attention_chunk, dense_masked_attention, feature_holes,
                        feature_validity, masked_attention, patch_match)
from .loading import (DECODER_MARKERS, ENCODER_MARKERS, MAPPING_MARKERS, MARKER_KEYS, GlobalRestorationNetworks,
                      build, build_decoder, build_encoder, build_mapping,
                      load_strictly, mapping_class)
from .networks import (MODES, SCALE, MaskedNonLocalBlock, Mode, PatchAttention, PatchAttentionMapping,
                       QualityMapping, ResnetBlock, ScratchMapping, VAEDecoder, VAEEncoder)

ENCODER_FILE = ModelFile("BOPBTL encoder (VAE_A)", Kind.GLOBAL_ENCODER, marker_keys=ENCODER_MARKERS)
MAPPING_FILE = ModelFile("BOPBTL mapping", Kind.GLOBAL_MAPPING, marker_keys=tuple(MAPPING_MARKERS), any_marker=True)
DECODER_FILE = ModelFile("BOPBTL decoder (VAE_B)", Kind.GLOBAL_DECODER, marker_keys=DECODER_MARKERS)

__all__ = ["DECODER_FILE", "DECODER_MARKERS", "DEFAULT_CHUNK_BYTES", "ENCODER_FILE", "ENCODER_MARKERS",
           "MAPPING_FILE", "MAPPING_MARKERS", "MARKER_KEYS", "MODES", "SCALE", "GlobalRestorationNetworks",
           "MaskedNonLocalBlock", "Mode", "PatchAttention", "PatchAttentionMapping", "QualityMapping", "ResnetBlock",
           "ScratchMapping", "VAEDecoder", "VAEEncoder", "attention_chunk", "build", "build_decoder",
           "build_encoder", "build_mapping", "dense_masked_attention", "feature_holes", "feature_validity",
           "load_strictly", "mapping_class", "masked_attention", "patch_match"]
