import unittest

from wordfreq import top_words


class TopWords(unittest.TestCase):
    def test_counts_and_orders(self):
        self.assertEqual(top_words("b a b c a b"), [("b", 3), ("a", 2), ("c", 1)])

    def test_ignores_case(self):
        self.assertEqual(top_words("Go go GO", 1), [("go", 3)])


if __name__ == "__main__":
    unittest.main()
