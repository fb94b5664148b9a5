"""The image catalog's adapters: the checksum file fetcher, the signature check, the catalog
read from the configuration file."""
