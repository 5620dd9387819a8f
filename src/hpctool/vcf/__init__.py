"""VCFs: reading them (:mod:`~hpctool.vcf.reading`), record concordance of two (:mod:`~hpctool.vcf.concordance`), recall against a truth set (:mod:`~hpctool.vcf.recall`)."""
