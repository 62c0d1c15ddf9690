"""Stories about pictures: one model call that looks at the image and writes
a short story about it in English and German (PicturesService)."""
