"""The course's own tooling, apart from what it teaches: notebook normalisation, student copies,
slide decks, the static site, the Colab installer, the GPU check and its benchmark report.
"""
