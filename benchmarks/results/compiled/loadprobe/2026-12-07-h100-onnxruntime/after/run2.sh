R=$1; mkdir -p $R; cd <work>/src; export PYTHONPATH=<work>/site PYTHONUNBUFFERED=1
PKG=$(find <work>/freshload/cache/compiled -name model.pt2 | head -1)
for arm in ortimport preload ortcpu plain ortcuda; do
  echo "$(date -u +%T) $arm" >> $R/p.txt
  timeout 100 python3 -X faulthandler $R/../x/probe2.py "$PKG" $arm $R > $R/$arm.txt 2>&1
  echo "$(date -u +%T) $arm exit $?" >> $R/p.txt
done
