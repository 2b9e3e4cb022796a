"""The texts the encoder-task tests feed every task: a fill-mask sentence, a QA pair."""

SENTENCE = "My name is Wolfgang and I live in Berlin, where Farm measures {mask} on CPUs."
QUESTION = "Where does Wolfgang live?"
CONTEXT = "My name is Wolfgang and I live in Berlin, where Farm measures inference on CPUs."
