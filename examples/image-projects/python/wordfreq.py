"""Counts words: the project the official-images example tests in python's image."""


def top_words(text, n=3):
    counts = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
