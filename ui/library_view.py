"""How the Library shows an entry: its picture (or a labelled card), its details in words, what a rename did."""

from __future__ import annotations

from PIL import Image

from portrait_studio.media.cards import label_card
from portrait_studio.registry.records import LoraRecord
from ui.common import load_picture
from ui.widgets import as_text

KIND_WORDS = {"trained": "trained likeness (LoRA)", "imported": "imported LoRA", "photos": "instant likeness"}


def kind_of(record: LoraRecord) -> str:
    return "instant likeness" if record.is_instant else KIND_WORDS.get(record.source, record.source)


def picture_of(record: LoraRecord) -> Image.Image:
    """The entry's preview or reference face; a card with its name and trigger word when it has neither."""
    picture = load_picture(record.preview_path or record.reference_path)
    if picture is not None:
        return picture
    kind = kind_of(record)
    lines = [kind[:1].upper() + kind[1:]]
    lines.append(f"Trigger word: {record.trigger}" if record.trigger else "No trigger word in the file")
    lines.append("No preview picture in the file")
    return label_card(record.name, lines)


def caption_of(record: LoraRecord) -> str:
    return f"{record.name} · {record.trigger}" if record.trigger else record.name


def details_markdown(record: LoraRecord) -> str:
    """The entry in words (the manifest's fields a person needs), never raw JSON."""
    rows = [("Kind", kind_of(record)), ("Short name (files, command line)", f"`{record.slug}`")]
    if record.trigger:
        subject = f"{record.trigger} {record.class_word}".strip()
        rows.append(("Use it in a prompt as", f"`{as_text(subject)}`"))
    if record.class_word:
        rows.append(("Class word", as_text(record.class_word)))
    base = f"{record.base_model}@{record.base_revision}" if record.base_revision else record.base_model
    rows.append(("Made for", as_text(base) if base else "unknown base model"))
    if record.rank:
        rows.append(("LoRA rank", str(record.rank)))
    if record.steps:
        rows.append(("Training steps", str(record.steps)))
    if record.similarity is not None:
        rows.append(("Likeness score", f"{record.similarity:.2f} (face similarity of its test images, 0–1)"))
    faces = record.extra.get("faces")
    if faces:
        rows.append(("Faces used", str(faces)))
    rows.append(("Reference face", "yes (Talk and Animate can start from it)" if record.reference_path else "none"))
    rows.append(("Added", record.created[:19].replace("T", " ") + " UTC" if record.created else "unknown"))
    lines = [f"- **{label}:** {value}" for label, value in rows]
    if record.random_weights:
        lines.append("- ⚠️ Made with random test weights: its effect is noise, not a likeness.")
    for note in record.extra.get("import_notes") or []:
        lines.append(f"- ⚠️ {as_text(note)}")
    return "\n".join(lines)


def rename_message(old: LoraRecord, new: LoraRecord) -> str:
    text = f"Renamed **{as_text(old.name)}** to **{as_text(new.name)}**."
    if new.slug != old.slug:
        text += (f" Its short name changed from `{old.slug}` to `{new.slug}`: use the new one on the command line; "
                 "files you exported earlier keep the old one.")
    else:
        text += f" Its short name stays `{new.slug}`."
    return text
