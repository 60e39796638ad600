"""The files the pack reads: one catalogue (name, models folder, where to get it, size, sha256),
the single source for the loaders' messages and file lists, the README's table, the workflows'
model links and the downloader; the kinds of checkpoint a loader reads, each naming its files in
the catalogue; and the mode a file the pack writes gets. Plain data (no torch, no ComfyUI): the
ComfyUI adapter resolves and reads the files, the scripts lay out the folders."""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

SSDIFF_FOLDER = "ssdiff"
FACE_DETECTION_FOLDER = "facedetection"
FACE_RESTORE_FOLDER = "facerestore_models"
INPAINT_FOLDER = "inpaint"
DDCOLOR_FOLDER = "ddcolor"
"""No ComfyUI DDColor pack shares a models folder (kijai/ComfyUI-DDColor, the one users have, keeps
the files in custom_nodes/ComfyUI-DDColor/checkpoints): models/ddcolor, named after the network as
other DDColor tools name theirs."""
MODEL_FOLDERS = (SSDIFF_FOLDER, FACE_DETECTION_FOLDER, FACE_RESTORE_FOLDER, INPAINT_FOLDER, DDCOLOR_FOLDER)
"""models/ssdiff for the method's own files; the others are the folders ComfyUI's face packs
(ReActor, facerestore_cf) and comfyui-inpaint-nodes already use, so users' existing files are found."""


class Kind(str, Enum):
    """What a file is for, in words: one loader node reads each kind."""
    FACE_DDPM = "face DDPM (the diffusion prior)"
    SCRATCH_DETECTOR = "scratch detector"
    COLOUR_TRANSFER = "colour transfer (CAP-VSTNet)"
    FACE_PARSER = "face parser"
    FACE_DETECTOR = "face detector (RetinaFace)"
    FACE_RESTORER = "coarse restoration (CodeFormer, GFPGAN)"
    FACE_RECOGNITION = "identity guidance and drift (ArcFace)"
    PERCEPTUAL_LOSS = "perceptual loss (LPIPS, VGG16)"
    INPAINTER = "filling damage (LaMa)"
    GLOBAL_ENCODER = "whole-photo restoration: encoder (BOPBTL VAE_A)"
    GLOBAL_MAPPING = "whole-photo restoration: mapping (BOPBTL quality, scratch or HR)"
    GLOBAL_DECODER = "whole-photo restoration: decoder (BOPBTL VAE_B)"
    COLOURISER = "colourising the whole photo (DDColor)"


@dataclass(frozen=True)
class CatalogueFile:
    """One published checkpoint, as a user puts it into `models/<folder>/<name>`."""
    name: str
    kind: Kind
    folder: str
    url: str
    """https address of the file, or of the zip archive holding it at `member`."""
    page: str
    """The release page a person reads (licence, alternatives)."""
    size: int | None
    """Bytes of the file; None where no published or recorded size is known."""
    sha256: str | None
    """Hex digest where one is recorded, else None (then only the size is checked). The upstream
    projects publish none: these are the digests that several unrelated projects recorded of the
    same release file, in agreement."""
    member: str | None = None
    """Path of the file inside the zip archive at `url`."""
    archive_size: int | None = None
    also: str = ""
    """Other places users get the same file."""
    optional: bool = False
    """Offered by its loader, but no shipped workflow needs it."""

    @property
    def download_url(self) -> str | None:
        """The file's own address (None when it comes inside an archive), for the workflows' links."""
        return None if self.member else self.url

    @property
    def where_to_get(self) -> str:
        where = f"{self.url} (inside it: {self.member})" if self.member else self.url
        return f"{where}{'; or ' + self.also if self.also else ''}"


_FACEXLIB = "https://github.com/xinntao/facexlib/releases"
_BOPBTL_ZIP = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0/global_checkpoints.zip"
_BOPBTL_PAGE = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/tag/v1.0"
_BOPBTL_ZIP_SIZE = 2036400762


def _bopbtl_restoration(path: str, kind: Kind, optional: bool = False) -> CatalogueFile:
    """A network of BOPBTL's global restoration, `checkpoints/restoration/<path>` in its zip, kept
    under models/ssdiff/restoration/ with its folder (three files are all latest_net_G.pth). Size
    and digest not recorded."""
    return CatalogueFile(f"restoration/{path}", kind, SSDIFF_FOLDER, _BOPBTL_ZIP, _BOPBTL_PAGE, None, None,
                         member=f"checkpoints/restoration/{path}", archive_size=_BOPBTL_ZIP_SIZE, optional=optional)


_DDCOLOR_MODELS = "https://huggingface.co/piddnad/DDColor-models"


def _ddcolor(name: str, size: int | None, sha256: str, optional: bool = False) -> CatalogueFile:
    """A released DDColor network, from upstream's Hugging Face repository of the .pth files."""
    return CatalogueFile(name, Kind.COLOURISER, DDCOLOR_FOLDER, f"{_DDCOLOR_MODELS}/resolve/main/{name}",
                         _DDCOLOR_MODELS, size, sha256,
                         also="custom_nodes/ComfyUI-DDColor/checkpoints (kijai's pack; the same file)",
                         optional=optional)


CATALOGUE: tuple[CatalogueFile, ...] = (
    CatalogueFile(
        "iddpm_ffhq512_ema500000.pth", Kind.FACE_DDPM, SSDIFF_FOLDER,
        "https://github.com/zsyOAOA/DifFace/releases/download/V1.0/iddpm_ffhq512_ema500000.pth",
        "https://github.com/zsyOAOA/DifFace/releases/tag/V1.0", None, None,
        also="the SSDiff / PGDiff Google Drive links"),
    CatalogueFile(
        "FT_Epoch_latest.pt", Kind.SCRATCH_DETECTOR, SSDIFF_FOLDER, _BOPBTL_ZIP, _BOPBTL_PAGE, None,
        "b2d7ab04e9b3885c6b1991bb7a0b823129dd6e3ac078a9fd059ebd2a7ba59a95",
        member="checkpoints/detection/FT_Epoch_latest.pt", archive_size=_BOPBTL_ZIP_SIZE),
    _bopbtl_restoration("VAE_A_quality/latest_net_G.pth", Kind.GLOBAL_ENCODER, optional=True),
    _bopbtl_restoration("mapping_quality/latest_net_mapping_net.pth", Kind.GLOBAL_MAPPING, optional=True),
    _bopbtl_restoration("mapping_scratch/latest_net_mapping_net.pth", Kind.GLOBAL_MAPPING, optional=True),
    _bopbtl_restoration("mapping_Patch_Attention/latest_net_mapping_net.pth", Kind.GLOBAL_MAPPING, optional=True),
    _bopbtl_restoration("VAE_B_quality/latest_net_G.pth", Kind.GLOBAL_DECODER, optional=True),
    _bopbtl_restoration("VAE_B_scratch/latest_net_G.pth", Kind.GLOBAL_DECODER, optional=True),
    CatalogueFile(
        "photo_image.pt", Kind.COLOUR_TRANSFER, SSDIFF_FOLDER,
        "https://raw.githubusercontent.com/PRIS-CV/SSDiff/7243c0df8e84b175d84c8105460f02332be41545/"
        "CAP_VSTNet/checkpoints/photo_image.pt",
        "https://github.com/linfengWen98/CAP-VSTNet", None, None,
        also="CAP-VSTNet's Google Drive checkpoints (linked from its README)"),
    CatalogueFile(
        "resnet34.pt", Kind.FACE_PARSER, SSDIFF_FOLDER,
        "https://github.com/yakhyo/face-parsing/releases/download/weights/resnet34.pt",
        "https://github.com/yakhyo/face-parsing/releases/tag/weights", None, None,
        also="the SSDiff Google Drive (formerly release v0.0.1)"),
    CatalogueFile(
        "parsing_parsenet.pth", Kind.FACE_PARSER, FACE_DETECTION_FOLDER,
        f"{_FACEXLIB}/download/v0.2.2/parsing_parsenet.pth", f"{_FACEXLIB}/tag/v0.2.2", 85331193,
        "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        also="CodeFormer release v0.1.0"),
    CatalogueFile(
        "parsing_bisenet.pth", Kind.FACE_PARSER, FACE_DETECTION_FOLDER,
        f"{_FACEXLIB}/download/v0.2.0/parsing_bisenet.pth", f"{_FACEXLIB}/tag/v0.2.0", 53289463,
        "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
        optional=True),
    CatalogueFile(
        "detection_Resnet50_Final.pth", Kind.FACE_DETECTOR, FACE_DETECTION_FOLDER,
        f"{_FACEXLIB}/download/v0.1.0/detection_Resnet50_Final.pth", f"{_FACEXLIB}/tag/v0.1.0", 109497761,
        "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d"),
    CatalogueFile(
        "detection_mobilenet0.25_Final.pth", Kind.FACE_DETECTOR, FACE_DETECTION_FOLDER,
        f"{_FACEXLIB}/download/v0.1.0/detection_mobilenet0.25_Final.pth", f"{_FACEXLIB}/tag/v0.1.0", 1789735,
        "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        optional=True),
    CatalogueFile(
        "codeformer.pth", Kind.FACE_RESTORER, FACE_RESTORE_FOLDER,
        "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
        "https://github.com/sczhou/CodeFormer/releases/tag/v0.1.0", 376637898,
        "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7"),
    CatalogueFile(
        "GFPGANv1.4.pth", Kind.FACE_RESTORER, FACE_RESTORE_FOLDER,
        "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth",
        "https://github.com/TencentARC/GFPGAN/releases/tag/v1.3.4", 348632874,
        "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", optional=True),
    CatalogueFile(
        "recognition_arcface_ir_se50.pth", Kind.FACE_RECOGNITION, FACE_DETECTION_FOLDER,
        f"{_FACEXLIB}/download/v0.1.0/recognition_arcface_ir_se50.pth", f"{_FACEXLIB}/tag/v0.1.0", None, None,
        optional=True),
    CatalogueFile(
        "vgg16-397923af.pth", Kind.PERCEPTUAL_LOSS, SSDIFF_FOLDER,
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html", None, None,
        optional=True),
    CatalogueFile(  # a TorchScript archive (LaMa's bin/to_jit.py); read without running it (models/lama)
        "big-lama.pt", Kind.INPAINTER, INPAINT_FOLDER,
        "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
        "https://github.com/Sanster/models/releases/tag/add_big_lama", 205669692,
        "344c77bbcb158f17dd143070d1e789f38a66c04202311ae3a258ef66667a9ea9",
        also="comfyui-inpaint-nodes' models/inpaint, IOPaint / lama-cleaner's model cache (the same file)",
        optional=True),
    # DDColor (piddnad/DDColor-models, Apache-2.0): {"params": state dict} files. The sha256 are Hugging
    # Face's LFS records (its file pages; LFS pointers of commits 1969bc5, 8c3ddc6), as the sizes of the
    # artistic and tiny files; modelscope's size is recorded by several projects with that digest; the
    # paper file's, nowhere exactly. ddcolor_modelscope is upstream's default (MODEL_ZOO.md).
    _ddcolor("ddcolor_modelscope.pth", 911950059,
             "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce"),
    _ddcolor("ddcolor_artistic.pth", 911950059,
             "a591ee5beedad36de703d8977e92d0c30c1eedc6453fd1b300f3b460842a23a9", optional=True),
    _ddcolor("ddcolor_paper.pth", None,
             "789781789db1bafc2165e1cf9658580f871cce64a81901ec49127877813f10b9", optional=True),
    _ddcolor("ddcolor_paper_tiny.pth", 220393145,
             "81dd643904f4664c3718513e3320ae3db0c567f0d3e18398606659adee7bfc17", optional=True),
)


def catalogue_file(name: str) -> CatalogueFile | None:
    """The catalogue's entry of that file name, if the pack knows it."""
    return next((entry for entry in CATALOGUE if entry.name == name), None)


@dataclass(frozen=True)
class ModelFile:
    """A kind of checkpoint a loader reads: its files in the catalogue, and the keys every file of
    the kind holds (their absence names another kind of file)."""
    what: str
    kind: Kind
    marker_keys: tuple[str, ...] = ()
    any_marker: bool = False
    """A file of the kind holds one of the marker keys (a kind of several architectures), not all."""

    @property
    def files(self) -> tuple[CatalogueFile, ...]:
        return tuple(entry for entry in CATALOGUE if entry.kind == self.kind)

    @property
    def folders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(entry.folder for entry in self.files))

    @property
    def expected(self) -> str:
        """The kind's file names, each with its folder where the kind has more than one."""
        several = len(self.folders) > 1
        return " or ".join(f"{entry.name}{f' (models/{entry.folder})' if several else ''}" for entry in self.files)

    @property
    def source(self) -> str:
        """Where to get the kind's files: "get it from <where>", or "get a.pth from <where>; b.pth
        from <where>" for a kind of several files."""
        if len(self.files) == 1:
            return f"get it from {self.files[0].where_to_get}"
        return "get " + "; ".join(f"{entry.name} from {entry.where_to_get}" for entry in self.files)

    @property
    def wanted(self) -> str:
        """The sentence that ends every refusal: the file expected and where to get it."""
        return f"Expected {self.expected}; {self.source}"

    def missing_markers(self, keys: set[str] | dict) -> tuple[str, ...]:
        """The marker keys whose absence from `keys` tells that they are not of this kind; () when
        they could be."""
        present = [key for key in self.marker_keys if key in keys]
        if self.any_marker:
            return () if present or not self.marker_keys else self.marker_keys
        return tuple(key for key in self.marker_keys if key not in keys)


def umask_mode() -> int:
    """The permissions a file created in the ordinary way gets here (0o666 less the umask), for
    files written under a temporary name (tempfile.mkstemp makes them 0o600) before they take their
    own: an archive folder shared with other users reads them as any other file there. The umask is
    read from /proc where it can be (setting it to read it would touch every thread's files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
