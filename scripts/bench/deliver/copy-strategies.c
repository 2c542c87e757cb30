// Durable fan-out copy strategies, outside Courier: the system calls push could use to copy one
// package into N files and make them durable, timed side by side (issue #13.4). Not part of
// `make bench`; how the choice in PackageSource.copy was made (docs/ARCHITECTURE.md).
//
//   cc -O2 -pthread -o /tmp/copy-strategies scripts/bench/deliver/copy-strategies.c
//   head -c 100M /dev/urandom > /tmp/src.bin; cat /tmp/src.bin > /dev/null
//   mkdir /tmp/d && /tmp/copy-strategies MODE /tmp/d N THREADS /tmp/src.bin [CHUNK_MIB] [NOSYNC] [K]
//   (an empty DIR each time, `sync` before; alternate the order of the modes between runs)
//
// MODE: direct     O_DIRECT writes from a mapping of the source (the unaligned tail buffered)
//       cfr        copy_file_range (page cache)
//       cfr_sfr    copy_file_range + sync_file_range(SYNC_FILE_RANGE_WRITE) per chunk
//       write_sfr  pwrite from the mapping + sync_file_range per chunk
//       hybrid     K of every 10 files direct, the others cfr (with NOSYNC=1: push --no-sync)
// Then, unless NOSYNC=1: syncfs, rename every file, syncfs — what push does.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdatomic.h>
static const char *mode, *dir; static int N, T, srcfd; static char *map; static off_t size;
static long chunk = 8<<20; static atomic_int next;
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void die(const char*m){perror(m);exit(1);}
static int hybrid=-1;
static void copy1(int i){
  const char*m=mode; if(hybrid>=0) m=(i%10)<hybrid?"direct":"cfr";
  char p[4096]; snprintf(p,sizeof p,"%s/.tmp.%d",dir,i);
  int fd=open(p,O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC,0644); if(fd<0)die(p);
  if(!strcmp(m,"direct")){
    fcntl(fd,F_SETFL,fcntl(fd,F_GETFL)|O_DIRECT);
    off_t al=size&~4095L,off=0;
    while(off<al){long n=pwrite(fd,map+off,(al-off)<chunk?(al-off):chunk,off); if(n<=0)die("pwrite");off+=n;}
    fcntl(fd,F_SETFL,fcntl(fd,F_GETFL)&~O_DIRECT);
    if(off<size&&pwrite(fd,map+off,size-off,off)!=size-off)die("tail");
  } else if(!strncmp(m,"cfr",3)){
    int sfr=!strcmp(m,"cfr_sfr"); loff_t in=0,out=0,last=0;
    while(in<size){ssize_t n=copy_file_range(srcfd,&in,fd,&out,chunk,0); if(n<=0)die("cfr");
      if(sfr){sync_file_range(fd,last,out-last,SYNC_FILE_RANGE_WRITE); last=out;}}
  } else if(!strncmp(m,"write",5)){
    int sfr=!strcmp(m,"write_sfr"); off_t off=0,last=0;
    while(off<size){long n=pwrite(fd,map+off,(size-off)<chunk?(size-off):chunk,off); if(n<=0)die("w");off+=n;
      if(sfr){sync_file_range(fd,last,off-last,SYNC_FILE_RANGE_WRITE); last=off;}}
  } else die("mode");
  close(fd);
}
static void*worker(void*a){int i;while((i=atomic_fetch_add(&next,1))<N)copy1(i);return 0;}
int main(int c,char**v){
  if(c<6){fprintf(stderr,"mode dir N T src [chunkMiB] [nosync]\n");return 2;}
  mode=v[1];dir=v[2];N=atoi(v[3]);T=atoi(v[4]); if(c>6)chunk=atol(v[6])<<20; int nosync=c>7&&atoi(v[7])==1; if(!strcmp(mode,"hybrid")){hybrid=atoi(v[8]);}
  srcfd=open(v[5],O_RDONLY);struct stat st;fstat(srcfd,&st);size=st.st_size;
  map=mmap(0,size,PROT_READ,MAP_SHARED,srcfd,0);
  double t0=now(); pthread_t th[256];
  for(int i=0;i<T;i++)pthread_create(&th[i],0,worker,0);
  for(int i=0;i<T;i++)pthread_join(th[i],0);
  double t1=now(); int dfd=open(dir,O_RDONLY|O_DIRECTORY);
  if(!nosync)syncfs(dfd);
  double t2=now();
  for(int i=0;i<N;i++){char a[4096],b[4096];snprintf(a,4096,"%s/.tmp.%d",dir,i);snprintf(b,4096,"%s/pkg.%d",dir,i);rename(a,b);}
  if(!nosync)syncfs(dfd);
  double t3=now();
  printf("%s%.0d N=%d T=%d chunk=%ldM total %.3f (copy %.3f sync1 %.3f rest %.3f)\n",mode,hybrid<0?0:hybrid,N,T,chunk>>20,t3-t0,t1-t0,t2-t1,t3-t2);
}
