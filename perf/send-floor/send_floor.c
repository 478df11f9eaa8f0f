// The kernel's floor under one fan-out (see run.sh): N connected loopback TCP pairs;
// core 0 sends one 130-byte frame to each, timed, `rounds` times, first with one send()
// per socket, then with all N sends in one io_uring submission; a thread on core 1
// drains the receiving ends through epoll. Prints the best and mean round.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <liburing.h>
static int N; static int *srv, *cli;
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
static void* reader(void*a){pin(1);int ep=epoll_create1(0);for(int i=0;i<N;i++){struct epoll_event e={.events=EPOLLIN,.data.fd=cli[i]};epoll_ctl(ep,EPOLL_CTL_ADD,cli[i],&e);}
 struct epoll_event ev[1024];char buf[65536];for(;;){int n=epoll_wait(ep,ev,1024,-1);for(int i=0;i<n;i++)while(read(ev[i].data.fd,buf,sizeof buf)>0);}return 0;}
int main(int argc,char**argv){N=atoi(argv[1]);int rounds=atoi(argv[2]);pin(0);srv=calloc(N,sizeof(int));cli=calloc(N,sizeof(int));
 int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_port=0,.sin_addr.s_addr=htonl(0x7f000001)};
 bind(l,(void*)&a,sizeof a);listen(l,4096);socklen_t al=sizeof a;getsockname(l,(void*)&a,&al);
 for(int i=0;i<N;i++){cli[i]=socket(AF_INET,SOCK_STREAM,0);if(connect(cli[i],(void*)&a,sizeof a)){perror("connect");return 1;}srv[i]=accept(l,0,0);int one=1;setsockopt(srv[i],IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);fcntl(cli[i],F_SETFL,O_NONBLOCK);}
 pthread_t t;pthread_create(&t,0,reader,0);usleep(100000);char msg[130];memset(msg,'x',sizeof msg);
 double best=1e9,sum=0;for(int r=0;r<rounds;r++){double t0=now();for(int i=0;i<N;i++)send(srv[i],msg,sizeof msg,0);double d=now()-t0;sum+=d;if(d<best)best=d;usleep(100000);}
 printf("%d sockets: send() each, best %.2f ms, mean %.2f ms (%.2f us per send)\n",N,best*1e3,sum/rounds*1e3,best/N*1e6);
 struct io_uring ring;struct io_uring_params p={0};if(io_uring_queue_init_params(16384,&ring,&p)){perror("uring");return 1;}
 best=1e9;sum=0;for(int r=0;r<rounds;r++){double t0=now();for(int i=0;i<N;i++){struct io_uring_sqe*q=io_uring_get_sqe(&ring);io_uring_prep_send(q,srv[i],msg,sizeof msg,0);}
  io_uring_submit_and_wait(&ring,N);struct io_uring_cqe*c;unsigned head,k=0;io_uring_for_each_cqe(&ring,head,c){if(c->res<0&&k==0)fprintf(stderr,"err %d\n",c->res);k++;}io_uring_cq_advance(&ring,k);
  double d=now()-t0;sum+=d;if(d<best)best=d;usleep(100000);}
 printf("%d sockets: io_uring, one submit for all, best %.2f ms, mean %.2f ms (%.2f us per send)\n",N,best*1e3,sum/rounds*1e3,best/N*1e6);return 0;}
