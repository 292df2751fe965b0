"""Instant likeness: an identity adapter (IP-Adapter Plus Face) fed with a person's aligned face crops.

No training: the face crops are encoded once by the adapter's CLIP image encoder and the encodings are
kept in the Library. At request time the adapter is loaded into the pipeline's UNet, steered by those
encodings, and taken out again (:func:`portrait_studio.instant.adapter.face_adapter_applied`).
"""
