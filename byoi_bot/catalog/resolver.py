"""The catalog of the configuration file, with checksums resolved at request time.

The file is read anew at every call, so an edited catalog applies to the next `/byoi
images` or deploy. A checksum file is fetched (and its signature checked) when a request
names the image; the checksum it gives goes into the request's spec, so the approval binds
it and a checksum file changed later changes nothing that was approved.
"""

from __future__ import annotations

import codecs

from ..config import ConfigError, load_catalog
from ..core.catalog import CatalogError, CatalogImage, checksum_from_file, unknown_image
from ..core.request import Checksum, mask_url
from ..preflight.url_safety import UrlGuard, UrlRefused
from .fetch import FetchError, fetch_small
from .signature import verify_detached


class FileCatalog:
    """`core.ports.ImageCatalog` over the `[[image]]` tables of `BYOI_CONFIG`."""

    def __init__(self, config_path: str, guard: UrlGuard) -> None:
        self.config_path = config_path
        self.guard = guard

    def images(self) -> tuple[CatalogImage, ...]:
        """Every catalog image, from the file as it is now."""
        if not self.config_path:
            return ()
        try:
            return load_catalog(self.config_path)
        except ConfigError as exc:
            raise CatalogError(f"The image catalog cannot be read: {exc}") from None

    def image(self, name: str) -> CatalogImage:
        """The image called `name` (any case); `CatalogError` with a suggestion otherwise."""
        images = self.images()
        found = next((i for i in images if i.name.lower() == name.lower()), None)
        if found is None:
            raise unknown_image(name, [i.name for i in images])
        return found

    def checksum(self, image: CatalogImage) -> tuple[Checksum, str]:
        """The image's checksum and where it comes from (for the card)."""
        if image.checksum is not None:
            return image.checksum, "the catalog"
        assert image.checksum_url is not None
        shown = mask_url(image.checksum_url)
        data = self._fetch(image.checksum_url, "checksum file")
        source = shown
        if image.signature_url and image.keyring:
            signature = self._fetch(image.signature_url, "signature")
            signer = verify_detached(data, signature, image.keyring, shown)
            source += f", signed by key {signer[-16:]}"
        return checksum_from_file(checksum_text(data), image.file_name, shown), source

    def _fetch(self, url: str, what: str) -> bytes:
        try:
            return fetch_small(url, self.guard)
        except (FetchError, UrlRefused) as exc:
            raise CatalogError(f"The {what} of this image cannot be fetched: {exc}") from None


_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def checksum_text(data: bytes) -> str:
    """A checksum file's text: UTF-8 with or without a BOM, or UTF-16/32 by its BOM (as
    Windows tools write them, e.g. PowerShell's `Out-File`)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8-sig")
    return data.decode(encoding, "replace")
