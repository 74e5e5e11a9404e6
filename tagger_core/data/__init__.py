"""The data stage: reading and writing labelled files, named sources, text normalisation,
validation and splitting. Everything here happens before an encoder sees a text."""
