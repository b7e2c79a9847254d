# keywords.awk: labelled documents for the explanation and one-command
# tests (awk -v seed=S -v n=N): 12 words drawn from 30 fillers; labels a-d
# each plant their own keyword at a random place, label e plants none.
BEGIN {
    srand(seed)
    nf = split("the of and to in is was for on that with as by at from this are be it or an had not but were which all have one their", fill, " ")
    split("zebra quartz violin copper", kw, " ")
    split("a b c d e", lab, " ")
    for (i = 0; i < n; i++) {
        k = 1 + int(rand() * 5)
        at = int(rand() * 12)
        line = ""
        for (j = 0; j < 12; j++) {
            w = j == at && k < 5 ? kw[k] : fill[1 + int(rand() * nf)]
            line = line (j ? " " : "") w
        }
        print lab[k] "\t" line
    }
}
