"""What an instant likeness keeps, in words the UI shows: here, so the UI can say it without loading torch."""

MAX_FACES = 4  # each face adds 16 adapter tokens; the best few carry the identity
STORED_NOTE = (
    f"Kept: encodings of your {MAX_FACES} best aligned face crops (numbers from the adapter's image encoder, "
    "not pictures) and one reference face crop (for the likeness score and the Library picture). Deleted at "
    "once: every other crop, the masks and the photo report; your photos themselves are never stored."
)
