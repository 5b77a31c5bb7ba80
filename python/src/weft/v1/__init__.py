"""Stubs generated from proto/weft/v1/weft.proto: do not edit."""
